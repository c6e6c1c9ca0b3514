//! The futex wait queues (`lwk/src/process/futex_queue.rs`).

use lwk_hosttest::process::futex_queue::{sign_extend12, FutexTable};

#[test]
fn wake_is_fifo_and_respects_bitsets() {
    let mut q = FutexTable::new();
    q.enqueue(0x1000, 1, 'a');
    q.enqueue(0x1000, 2, 'b');
    q.enqueue(0x1000, 3, 'c');
    q.enqueue(0x2000, u32::MAX, 'z');
    assert_eq!(q.wake(0x1000, 1, 2), vec!['b']);
    assert_eq!(q.wake(0x1000, 5, u32::MAX), vec!['a', 'c']);
    assert_eq!(q.waiters(0x1000), 0);
    assert_eq!(q.wake(0x3000, 5, u32::MAX), Vec::<char>::new());
    assert_eq!(q.waiters(0x2000), 1);
}

#[test]
fn wake_takes_at_most_n() {
    let mut q = FutexTable::new();
    for i in 0..5 {
        q.enqueue(7, u32::MAX, i);
    }
    assert_eq!(q.wake(7, 2, u32::MAX), vec![0, 1]);
    assert_eq!(q.wake(7, 0, u32::MAX), Vec::<i32>::new());
    assert_eq!(q.waiters(7), 3);
}

#[test]
fn requeue_moves_the_rest_in_order() {
    let mut q = FutexTable::new();
    for c in ['a', 'b', 'c', 'd'] {
        q.enqueue(1, u32::MAX, c);
    }
    q.enqueue(2, u32::MAX, 'x');
    let (woken, moved) = q.requeue(1, 2, 1, 2);
    assert_eq!(woken, vec!['a']);
    assert_eq!(moved, 2);
    assert_eq!(q.waiters(1), 1);
    assert_eq!(q.wake(2, 10, u32::MAX), vec!['x', 'b', 'c']);
    assert_eq!(q.wake(1, 10, u32::MAX), vec!['d']);
}

#[test]
fn requeue_to_the_same_key_moves_nothing() {
    let mut q = FutexTable::new();
    for c in ['a', 'b', 'c'] {
        q.enqueue(1, u32::MAX, c);
    }
    let (woken, moved) = q.requeue(1, 1, 1, 5);
    assert_eq!((woken, moved), (vec!['a'], 2));
    assert_eq!(q.waiters(1), 2);
}

#[test]
fn remove_finds_a_waiter_anywhere() {
    let mut q = FutexTable::new();
    q.enqueue(1, u32::MAX, 10);
    q.enqueue(2, u32::MAX, 20);
    assert!(q.remove(|&x| x == 20));
    assert!(!q.remove(|&x| x == 20));
    assert_eq!(q.waiters(2), 0);
    assert_eq!(q.waiters(1), 1);
}

#[test]
fn wake_op_arguments_sign_extend() {
    assert_eq!(sign_extend12(0xfff), -1);
    assert_eq!(sign_extend12(0x800), -2048);
    assert_eq!(sign_extend12(0x7ff), 0x7ff);
}
