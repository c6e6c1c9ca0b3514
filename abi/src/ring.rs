//! Generic single-producer/single-consumer ring of fixed-size packets in
//! shared guest memory: the IKC channel transport (ARCHITECTURE §5).
//!
//! Layout of a ring region (`base` is 64-byte aligned):
//!
//! ```text
//! +0    RingHeader (256 bytes): magic, packet size, capacity,
//!       head (consumer-owned cache line), tail (producer-owned cache line),
//!       receiver_sleeping (consumer-owned cache line)
//! +256  capacity slots of `P` (capacity is a power of two)
//! ```
//!
//! Positions `head` and `tail` are free-running u64 counters; slot of
//! position `n` is `n & (capacity - 1)`. The ring is empty when
//! `head == tail` and full when `tail - head == capacity`.
//!
//! Doorbell protocol (no exit to the host on the hot path): the consumer
//! polls; before blocking it calls [`Consumer::prepare_sleep`], which sets
//! `receiver_sleeping`, issues a full fence and re-checks for packets. The
//! producer's [`Producer::send`] publishes the packet, issues a full fence
//! and reports whether the receiver had declared itself sleeping; only then
//! does the sender ring the doorbell (ioeventfd port write from the LWK, irqfd
//! from the host). The two fences make it impossible for both sides to miss
//! each other (one of them sees the other's write).
//!
//! Who may hold what: exactly one [`Producer`] and one [`Consumer`] per ring,
//! across host and LWK together. Whoever creates the region calls
//! [`RingHeader`]-writing [`init`]; the other side uses [`Producer::attach`] /
//! [`Consumer::attach`], which validate the header.

use core::marker::PhantomData;
use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// "IHKRING\0".
pub const RING_MAGIC: u64 = u64::from_le_bytes(*b"IHKRING\0");
/// Bytes before the first slot.
pub const RING_HEADER_SIZE: usize = 256;

/// Plain-data packet type.
///
/// # Safety
/// The implementor must be `#[repr(C)]`, contain no pointers or references,
/// and be valid for every bit pattern (the other side of a ring is another
/// kernel and may write anything).
pub unsafe trait Packet: Copy + 'static {}

unsafe impl Packet for u64 {}
unsafe impl<const N: usize> Packet for [u64; N] {}

#[repr(C)]
pub struct RingHeader {
    pub magic: u64,
    pub packet_size: u32,
    pub capacity: u32,
    pub _pad0: [u64; 6],
    /// Next position the consumer reads. Written by the consumer only.
    pub head: AtomicU64,
    pub _pad1: [u64; 7],
    /// Next position the producer writes. Written by the producer only.
    pub tail: AtomicU64,
    pub _pad2: [u64; 7],
    /// 1 when the consumer is about to block and wants a doorbell.
    pub receiver_sleeping: AtomicU32,
    pub _pad3: [u32; 15],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The region is too small for the header and one packet, or misaligned.
    BadRegion,
    /// Magic or packet size in the header do not match.
    BadHeader,
    /// The other side left head/tail in an impossible state.
    Corrupt,
    /// The ring is full; the packet was not sent.
    Full,
}

/// Number of slots a region of `region_size` bytes holds for packets of
/// `packet_size` bytes (largest power of two that fits; 0 if none).
pub const fn capacity_for(region_size: usize, packet_size: usize) -> u32 {
    if packet_size == 0 || region_size < RING_HEADER_SIZE + packet_size {
        return 0;
    }
    let n = (region_size - RING_HEADER_SIZE) / packet_size;
    let mut cap: usize = 1;
    while cap * 2 <= n && cap * 2 <= (1 << 30) {
        cap *= 2;
    }
    cap as u32
}

/// Initialise the header of a ring for packets `P` in `[base, base + size)`.
/// Returns the capacity.
///
/// # Safety
/// `base` must point to `size` writable bytes that stay mapped while any
/// handle to the ring exists, and nobody may use the ring concurrently.
pub unsafe fn init<P: Packet>(base: *mut u8, size: usize) -> Result<u32, RingError> {
    let cap = check_region::<P>(base, size)?;
    let hdr = base as *mut RingHeader;
    // SAFETY: the caller guarantees exclusive access to the region, which is
    // large enough (checked) and 64-byte aligned (checked).
    unsafe {
        core::ptr::write_bytes(base, 0, RING_HEADER_SIZE);
        (*hdr).packet_size = core::mem::size_of::<P>() as u32;
        (*hdr).capacity = cap;
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*hdr).magic), RING_MAGIC);
    }
    fence(Ordering::Release);
    Ok(cap)
}

fn check_region<P: Packet>(base: *mut u8, size: usize) -> Result<u32, RingError> {
    let cap = capacity_for(size, core::mem::size_of::<P>());
    if cap == 0 || base.is_null() || (base as usize) % 64 != 0 || core::mem::align_of::<P>() > 64 {
        return Err(RingError::BadRegion);
    }
    Ok(cap)
}

/// Shared part of both handles.
struct RingRef<P: Packet> {
    hdr: *const RingHeader,
    slots: *mut P,
    cap: u64,
    _p: PhantomData<P>,
}

impl<P: Packet> RingRef<P> {
    unsafe fn attach(base: *mut u8, size: usize) -> Result<Self, RingError> {
        let cap = check_region::<P>(base, size)?;
        let hdr = base as *const RingHeader;
        // SAFETY: region checked large enough and aligned; caller keeps it mapped.
        let (magic, psize, hcap) = unsafe {
            (
                core::ptr::read_volatile(core::ptr::addr_of!((*hdr).magic)),
                core::ptr::read_volatile(core::ptr::addr_of!((*hdr).packet_size)),
                core::ptr::read_volatile(core::ptr::addr_of!((*hdr).capacity)),
            )
        };
        if magic != RING_MAGIC || psize as usize != core::mem::size_of::<P>() || hcap != cap {
            return Err(RingError::BadHeader);
        }
        fence(Ordering::Acquire);
        Ok(RingRef {
            hdr,
            // SAFETY: RING_HEADER_SIZE < size (checked by capacity_for).
            slots: unsafe { base.add(RING_HEADER_SIZE) } as *mut P,
            cap: cap as u64,
            _p: PhantomData,
        })
    }

    fn hdr(&self) -> &RingHeader {
        // SAFETY: attach validated the region, which outlives the handle
        // (contract of attach); the header is only accessed through atomics
        // after initialisation.
        unsafe { &*self.hdr }
    }

    fn slot(&self, pos: u64) -> *mut P {
        // SAFETY: (pos & (cap-1)) < cap, and cap slots fit in the region.
        unsafe { self.slots.add((pos & (self.cap - 1)) as usize) }
    }
}

/// The sending end.
pub struct Producer<P: Packet> {
    r: RingRef<P>,
}

/// The receiving end.
pub struct Consumer<P: Packet> {
    r: RingRef<P>,
}

// SAFETY: the handles only hold pointers into shared memory that every thread
// may access; the single-owner rule is enforced by `&mut self` on the methods
// that move positions, and by the attach contract across kernels.
unsafe impl<P: Packet> Send for Producer<P> {}
unsafe impl<P: Packet> Sync for Producer<P> {}
unsafe impl<P: Packet> Send for Consumer<P> {}
unsafe impl<P: Packet> Sync for Consumer<P> {}

impl<P: Packet> Producer<P> {
    /// # Safety
    /// `[base, base + size)` must hold an initialised ring (see [`init`]),
    /// stay mapped while the handle lives, and no other producer may exist.
    pub unsafe fn attach(base: *mut u8, size: usize) -> Result<Self, RingError> {
        // SAFETY: forwarded contract.
        Ok(Producer {
            r: unsafe { RingRef::attach(base, size)? },
        })
    }

    pub fn capacity(&self) -> u32 {
        self.r.cap as u32
    }

    /// Publish one packet. `Ok(true)` means the receiver declared itself
    /// sleeping and the caller must ring the doorbell.
    pub fn send(&mut self, p: &P) -> Result<bool, RingError> {
        let h = self.r.hdr();
        let tail = h.tail.load(Ordering::Relaxed);
        let head = h.head.load(Ordering::Acquire);
        let used = tail.wrapping_sub(head);
        if used > self.r.cap {
            return Err(RingError::Corrupt);
        }
        if used == self.r.cap {
            return Err(RingError::Full);
        }
        // SAFETY: slot is in bounds; the consumer does not read it until tail
        // moves past it (Release below).
        unsafe { core::ptr::write_volatile(self.r.slot(tail), *p) };
        h.tail.store(tail.wrapping_add(1), Ordering::Release);
        fence(Ordering::SeqCst);
        Ok(h.receiver_sleeping.load(Ordering::Relaxed) != 0)
    }

    /// Packets queued and not yet consumed.
    pub fn pending(&self) -> u64 {
        let h = self.r.hdr();
        h.tail
            .load(Ordering::Relaxed)
            .wrapping_sub(h.head.load(Ordering::Acquire))
    }
}

impl<P: Packet> Consumer<P> {
    /// # Safety
    /// As [`Producer::attach`], with "no other consumer".
    pub unsafe fn attach(base: *mut u8, size: usize) -> Result<Self, RingError> {
        // SAFETY: forwarded contract.
        Ok(Consumer {
            r: unsafe { RingRef::attach(base, size)? },
        })
    }

    pub fn capacity(&self) -> u32 {
        self.r.cap as u32
    }

    /// Take the oldest packet, if any.
    pub fn recv(&mut self) -> Result<Option<P>, RingError> {
        let h = self.r.hdr();
        let head = h.head.load(Ordering::Relaxed);
        let tail = h.tail.load(Ordering::Acquire);
        let used = tail.wrapping_sub(head);
        if used == 0 {
            return Ok(None);
        }
        if used > self.r.cap {
            return Err(RingError::Corrupt);
        }
        // SAFETY: slot in bounds, published by the producer (Acquire above);
        // P is valid for any bit pattern (Packet contract).
        let p = unsafe { core::ptr::read_volatile(self.r.slot(head)) };
        h.head.store(head.wrapping_add(1), Ordering::Release);
        Ok(Some(p))
    }

    pub fn is_empty(&self) -> bool {
        let h = self.r.hdr();
        h.tail.load(Ordering::Acquire) == h.head.load(Ordering::Relaxed)
    }

    /// Declare that the consumer is about to block. Returns `true` when the
    /// ring is still empty (block now, and call [`Consumer::awake`] after
    /// waking); `false` when a packet arrived meanwhile (the flag is cleared
    /// again; do not block).
    pub fn prepare_sleep(&mut self) -> bool {
        let h = self.r.hdr();
        h.receiver_sleeping.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.is_empty() {
            true
        } else {
            h.receiver_sleeping.store(0, Ordering::Relaxed);
            false
        }
    }

    /// Clear the sleeping flag (the consumer is polling again).
    pub fn awake(&mut self) {
        self.r.hdr().receiver_sleeping.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::mem::{offset_of, size_of};

    #[repr(C, align(64))]
    struct Region([u8; 4096]);

    #[derive(Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Pkt {
        a: u64,
        b: [u64; 3],
    }
    unsafe impl Packet for Pkt {}

    #[test]
    fn layout() {
        assert_eq!(size_of::<RingHeader>(), RING_HEADER_SIZE);
        assert_eq!(offset_of!(RingHeader, head), 64);
        assert_eq!(offset_of!(RingHeader, tail), 128);
        assert_eq!(offset_of!(RingHeader, receiver_sleeping), 192);
    }

    #[test]
    fn capacity_is_power_of_two() {
        assert_eq!(capacity_for(4096, 32), 64);
        assert_eq!(capacity_for(4096 + 256, 64), 64);
        assert_eq!(capacity_for(256 + 63, 64), 0);
        assert_eq!(capacity_for(0x1_0000, 64), 512);
    }

    #[test]
    fn send_recv_full_wrap_and_sleep() {
        let mut region = std::boxed::Box::new(Region([0xa5; 4096]));
        let base = region.0.as_mut_ptr();
        let cap = unsafe { init::<Pkt>(base, 4096) }.unwrap();
        assert_eq!(cap, 64);
        let mut tx = unsafe { Producer::<Pkt>::attach(base, 4096) }.unwrap();
        let mut rx = unsafe { Consumer::<Pkt>::attach(base, 4096) }.unwrap();
        assert_eq!(rx.recv(), Ok(None));
        for round in 0..3u64 {
            for i in 0..cap as u64 {
                let p = Pkt {
                    a: round * 1000 + i,
                    b: [i; 3],
                };
                assert_eq!(tx.send(&p), Ok(false));
            }
            assert_eq!(tx.send(&Pkt { a: 0, b: [0; 3] }), Err(RingError::Full));
            for i in 0..cap as u64 {
                assert_eq!(rx.recv().unwrap().unwrap().a, round * 1000 + i);
            }
            assert_eq!(rx.recv(), Ok(None));
        }
        assert!(rx.prepare_sleep());
        assert_eq!(tx.send(&Pkt { a: 7, b: [0; 3] }), Ok(true));
        rx.awake();
        assert_eq!(tx.send(&Pkt { a: 8, b: [0; 3] }), Ok(false));
        assert!(!rx.prepare_sleep(), "packets pending: must not sleep");
        assert_eq!(rx.recv().unwrap().unwrap().a, 7);
    }

    #[test]
    fn attach_rejects_bad_header_and_corruption() {
        let mut region = std::boxed::Box::new(Region([0; 4096]));
        let base = region.0.as_mut_ptr();
        assert_eq!(
            unsafe { Consumer::<Pkt>::attach(base, 4096) }.err(),
            Some(RingError::BadHeader)
        );
        unsafe { init::<u64>(base, 4096) }.unwrap();
        assert_eq!(
            unsafe { Consumer::<Pkt>::attach(base, 4096) }.err(),
            Some(RingError::BadHeader)
        );
        unsafe { init::<Pkt>(base, 4096) }.unwrap();
        let mut rx = unsafe { Consumer::<Pkt>::attach(base, 4096) }.unwrap();
        let hdr = unsafe { &*(base as *const RingHeader) };
        hdr.tail.store(1000, Ordering::Relaxed);
        assert_eq!(rx.recv(), Err(RingError::Corrupt));
        let v = [0u8; 10];
        assert_eq!(
            unsafe { init::<Pkt>(v.as_ptr() as *mut u8, 10) }.err(),
            Some(RingError::BadRegion)
        );
    }

    #[test]
    fn two_threads_pass_every_packet_in_order() {
        let mut region = std::boxed::Box::new(Region([0; 4096]));
        let base = region.0.as_mut_ptr();
        unsafe { init::<u64>(base, 4096) }.unwrap();
        let mut tx = unsafe { Producer::<u64>::attach(base, 4096) }.unwrap();
        let mut rx = unsafe { Consumer::<u64>::attach(base, 4096) }.unwrap();
        const N: u64 = 20_000;
        let t = std::thread::spawn(move || {
            let mut i = 0;
            while i < N {
                match tx.send(&i) {
                    Ok(_) => i += 1,
                    Err(RingError::Full) => std::thread::yield_now(),
                    Err(e) => panic!("{e:?}"),
                }
            }
        });
        let mut next = 0;
        while next < N {
            if let Some(v) = rx.recv().unwrap() {
                assert_eq!(v, next);
                next += 1;
            }
        }
        t.join().unwrap();
        drop(region);
    }
}
