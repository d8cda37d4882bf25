//! Stress: many real threads hammer one limiter while another changes its limit.
//!
//! On a 2-core machine this measures correctness under oversubscription, not speed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;

use valve::{Fixed, Limiter};

const THREADS: usize = 8;
const OPS_PER_THREAD: u32 = 1_000_000;
const LOW: u32 = 3;
const HIGH: u32 = 6;

#[test]
fn in_flight_never_exceeds_the_limit_and_no_permit_is_lost() {
    let limiter = Arc::new(Limiter::new(Fixed::new(HIGH).unwrap()).unwrap());
    // Holders counted outside the limiter: a second witness of in-flight.
    let holders = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let changer = {
        let (limiter, stop) = (limiter.clone(), stop.clone());
        thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                limiter.set_limit(if flips % 2 == 0 { LOW } else { HIGH });
                flips += 1;
                thread::yield_now();
            }
            flips
        })
    };

    let workers: Vec<_> = (0..THREADS)
        .map(|i| {
            let (limiter, holders) = (limiter.clone(), holders.clone());
            thread::spawn(move || {
                let mut admitted = 0u64;
                for op in 0..OPS_PER_THREAD {
                    let now = u64::from(op);
                    if let Ok(permit) = limiter.try_acquire_at(now) {
                        admitted += 1;
                        let held = holders.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(permit.in_flight_at_acquire() <= HIGH);
                        assert!(held <= HIGH, "{held} holders above the highest limit");
                        holders.fetch_sub(1, Ordering::SeqCst);
                        match (op + i as u32) % 3 {
                            0 => permit.success_at(now + 1),
                            1 => permit.dropped_at(now + 1),
                            _ => drop(permit),
                        }
                    }
                }
                admitted
            })
        })
        .collect();

    let admitted: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    stop.store(true, Ordering::Relaxed);
    assert!(changer.join().unwrap() > 0);

    let s = limiter.snapshot();
    assert_eq!(s.in_flight, 0);
    assert_eq!(s.admitted, admitted);
    assert_eq!(s.admitted + s.rejected, u64::from(OPS_PER_THREAD) * THREADS as u64);
    assert_eq!(s.admitted, s.success + s.dropped + s.ignored);

    // Exactly `limit` permits can be taken afterwards: none was lost or duplicated.
    let limit = limiter.limit();
    let permits: Vec<_> = (0..limit).map(|_| limiter.try_acquire_at(0).unwrap()).collect();
    assert!(limiter.try_acquire_at(0).is_err());
    assert_eq!(permits.len() as u32, limit);
}
