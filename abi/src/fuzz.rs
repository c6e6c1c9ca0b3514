//! Fuzz harness of the shared structures one side reads after the other
//! wrote them (issue 20, item 5): the IKC ring (a header whose positions,
//! magic, size or capacity a broken LWK overwrote), the `#!` line parser
//! (the LWK's execve and mcexec), range subtraction (the LWK's address
//! space and mcexec's mirror) and the number decoders of statuses, offload
//! calls and routes. Whatever they read, they return a value or an error.

extern crate std;

use core::sync::atomic::Ordering;
use proptest::prelude::*;
use std::vec::Vec;

use crate::linux::{route, script};
use crate::offload::{OffloadCall, ProcState};
use crate::range::subtract;
use crate::ring::{init, Consumer, Producer, RingHeader, RING_HEADER_SIZE, RING_MAGIC};
use crate::status::{CpuState, OsStatus};

#[repr(C, align(64))]
struct Region([u8; 4096]);

proptest! {
    #![proptest_config(mck_tests::fuzz::config(3000))]

    /// A ring whose header the other side set to anything, before and
    /// after the host attached: attach refuses, or every receive and send
    /// gives a packet, nothing or an error, and never more packets than
    /// the ring holds in one pass.
    #[test]
    fn ring_headers(
        magic_ok in any::<bool>(), psize in prop_oneof![Just(64u32), any::<u32>()],
        cap in prop_oneof![Just(32u32), any::<u32>()],
        head in prop_oneof![0u64..100, any::<u64>()], tail in prop_oneof![0u64..100, any::<u64>()],
        late in prop::collection::vec((any::<u64>(), any::<u64>()), 0..4),
    ) {
        let mut r = Region([0xa5; 4096]);
        let base = r.0.as_mut_ptr();
        // SAFETY: `r` is ours, 64-byte aligned and 4096 bytes long.
        let real_cap = unsafe { init::<[u64; 8]>(base, 4096) }.unwrap();
        prop_assert_eq!(real_cap, 32);
        // SAFETY: the header lies at the start of `r`.
        let h = unsafe { &mut *(base as *mut RingHeader) };
        h.magic = if magic_ok { RING_MAGIC } else { RING_MAGIC ^ 1 };
        h.packet_size = psize;
        h.capacity = cap;
        h.head.store(head, Ordering::Relaxed);
        h.tail.store(tail, Ordering::Relaxed);
        // SAFETY: as above; one consumer and one producer, this thread only.
        let rx = unsafe { Consumer::<[u64; 8]>::attach(base, 4096) };
        let tx = unsafe { Producer::<[u64; 8]>::attach(base, 4096) };
        let (Ok(mut rx), Ok(mut tx)) = (rx, tx) else {
            prop_assert!(!magic_ok || psize != 64 || cap != 32);
            return Ok(());
        };
        for (hd, tl) in late.into_iter().chain([(head, tail)]) {
            let mut got = 0;
            while let Ok(Some(_)) = rx.recv() {
                got += 1;
                prop_assert!(got <= 32);
            }
            let _ = tx.send(&[7; 8]);
            let _ = (rx.is_empty(), tx.pending(), rx.prepare_sleep());
            rx.awake();
            h.head.store(hd, Ordering::Relaxed);
            h.tail.store(tl, Ordering::Relaxed);
        }
        prop_assert!(RING_HEADER_SIZE + 32 * 64 <= 4096);
    }

    /// `#!` lines of any bytes: an interpreter inside the head, or ENOEXEC.
    #[test]
    fn script_lines(head in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec(prop_oneof![Just(b' '), Just(b'\t'), Just(b'\n'), Just(0u8), Just(b'a')], 0..300)
            .prop_map(|mut v| { v.splice(0..0, *b"#!"); v }),
    ]) {
        if let Ok(s) = script::parse(&head) {
            prop_assert!(script::is_script(&head));
            // "#!\0" names the empty interpreter, as on Linux (whose
            // open of "" then fails with ENOENT).
            prop_assert!(!s.interp.contains(&0));
            prop_assert!(s.arg.is_none_or(|a| !a.contains(&0)));
            prop_assert!(s.interp.len() <= head.len());
        }
    }

    /// Any range minus any sorted holes: ascending pieces inside the range
    /// that miss every hole.
    #[test]
    fn range_subtraction(
        start in any::<u64>(), end in any::<u64>(),
        mut holes in prop::collection::vec((any::<u64>(), any::<u64>()), 0..6),
    ) {
        holes.sort_by_key(|h| h.0);
        let pieces: Vec<(u64, u64)> = subtract(start, end, &holes).collect();
        let mut last = start;
        for &(a, b) in &pieces {
            prop_assert!(a >= last && a < b && b <= end);
            prop_assert!(holes.iter().all(|&(hs, he)| he <= a || hs >= b || he <= hs));
            last = b;
        }
    }

    #[test]
    fn numbers_from_the_other_side(v in any::<u64>()) {
        let _ = (OffloadCall::from_u64(v), ProcState::from_u32(v as u32), OsStatus::from_u32(v as u32));
        let _ = (CpuState::from_u32(v as u32), route(v));
    }
}
