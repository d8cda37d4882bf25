/*
 * A minimal test helper for plain C11: CHECK records a pass or prints the failing expression,
 * and check_summary prints "N passed, M failed" and gives the exit status.
 */
#ifndef VALVE_CHECK_H
#define VALVE_CHECK_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* Atomic, because the stress test checks from many threads. */
static atomic_uint check_passed;
static atomic_uint check_failed;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (cond) {                                                                   \
            atomic_fetch_add(&check_passed, 1);                                       \
        } else {                                                                      \
            atomic_fetch_add(&check_failed, 1);                                       \
            fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__,      \
                    __func__, #cond);                                                 \
        }                                                                             \
    } while (0)

/* Compares two status codes and names both on failure. */
#define CHECK_STATUS(expr, expected)                                                  \
    do {                                                                              \
        valve_status check_got_ = (expr);                                             \
        if (check_got_ == (expected)) {                                               \
            atomic_fetch_add(&check_passed, 1);                                       \
        } else {                                                                      \
            atomic_fetch_add(&check_failed, 1);                                       \
            fprintf(stderr, "%s:%d: %s: %s returned %s, expected %s\n", __FILE__,     \
                    __LINE__, __func__, #expr, valve_status_name(check_got_),         \
                    valve_status_name(expected));                                     \
        }                                                                             \
    } while (0)

static inline int check_summary(void) {
    unsigned failed = atomic_load(&check_failed);
    printf("%u passed, %u failed\n", atomic_load(&check_passed), failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif /* VALVE_CHECK_H */
