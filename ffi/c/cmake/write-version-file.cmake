# cmake -DVERSION=x.y.z -DOUTPUT=.../valveConfigVersion.cmake -DCMAKE_SIZEOF_VOID_P=8 -P this
# Writes the version file of valve's CMake package with CMake's own helper. Cargo's rule for
# breaking changes: before 1.0 a minor release breaks, from 1.0 a major one.
include(CMakePackageConfigHelpers)
if(VERSION MATCHES "^0\\.")
    set(compatibility SameMinorVersion)
else()
    set(compatibility SameMajorVersion)
endif()
write_basic_package_version_file("${OUTPUT}" VERSION "${VERSION}" COMPATIBILITY ${compatibility})
