/*
 * Shedding load with valve from C: admit work up to an adaptive limit, refuse the rest at once,
 * and report how each admitted call ended so the limit learns.
 *
 * Build against an installed valve (README, "C"):
 *   cc -std=c11 ffi/c/example.c $(pkg-config --cflags --libs valve)
 * or in the checkout, after `cargo build --release`:
 *   cc -std=c11 -Iinclude ffi/c/example.c target/release/libvalve.a -Wl,--gc-sections -lpthread -ldl -lm
 */
#include <stdio.h>

#include "valve.h"

/* Stands in for the real work: a call to a backend. Returns 0 on success. */
static int call_backend(int request) { return request % 10 == 9 ? -1 : 0; }

int main(void) {
    valve_limiter_config config = valve_limiter_config_default();
    config.aimd.max_limit = 200;

    valve_limiter *limiter = NULL;
    valve_status status = valve_limiter_new(&config, &limiter);
    if (status != VALVE_OK) {
        fprintf(stderr, "valve_limiter_new: %s\n", valve_status_name(status));
        return 1;
    }

    int served = 0, shed = 0;
    for (int request = 0; request < 100; request++) {
        valve_permit permit;
        if (valve_limiter_try_acquire(limiter, &permit) != VALVE_OK) {
            shed++; /* answer 503 at once instead of queueing */
            continue;
        }
        /* A timeout or a 503 from the backend is an overload signal: report it as dropped. */
        uint32_t outcome = call_backend(request) == 0 ? VALVE_OUTCOME_SUCCESS : VALVE_OUTCOME_DROPPED;
        valve_limiter_release(limiter, &permit, outcome);
        served++;
    }

    valve_limiter_snapshot snap;
    valve_limiter_get_snapshot(limiter, &snap);
    printf("valve %s: served %d, shed %d, limit now %u\n", valve_version(), served, shed, snap.limit);
    valve_limiter_free(limiter);
    return 0;
}
