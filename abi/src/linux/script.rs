//! `#!` interpreter scripts as Linux's execve reads them (`binfmt_script`):
//! the first line of the file names an interpreter and at most one
//! argument. mcexec (the first program) and the LWK's execve both start a
//! script through this one reading, so they agree with each other and with
//! Linux on what runs.
//!
//! The rules, from `execve(2)` and Linux's `fs/binfmt_script.c`: only the
//! first [`BUF_SIZE`] bytes are looked at; the line ends at the first
//! newline (or, without one, at the end of those bytes, provided the
//! interpreter's name ends inside them); spaces and tabs around the
//! interpreter's name are skipped; everything after the first space, tab
//! or NUL that follows the name, trimmed, is one argument (spaces inside
//! it are kept). A script may name another script as its interpreter:
//! Linux allows [`MAX_REWRITES`] such rewrites in one execve, then fails
//! with ELOOP.

use super::errno::{Errno, ELOOP, ENOEXEC};

/// How many bytes of the file Linux reads to recognize its format
/// (`BINPRM_BUF_SIZE`).
pub const BUF_SIZE: usize = 256;

/// Interpreter rewrites one execve may make: Linux's `exec_binprm` tries
/// six formats' handlers at most (depths 0 to 5), so a chain of five
/// scripts ending in a binary runs and a sixth script fails with ELOOP.
pub const MAX_REWRITES: usize = 5;

/// A script's interpreter line: the interpreter's path and its optional
/// argument, borrowed from the bytes read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shebang<'a> {
    pub interp: &'a [u8],
    pub arg: Option<&'a [u8]>,
}

fn spacetab(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn terminator(b: u8) -> bool {
    spacetab(b) || b == 0
}

/// Whether `head` (the file's first bytes) starts a `#!` script.
pub fn is_script(head: &[u8]) -> bool {
    head.starts_with(b"#!")
}

/// Read the interpreter line of a script whose first bytes are `head`
/// (at most [`BUF_SIZE`] are looked at; a shorter file reads as if padded
/// with NULs, as Linux's buffer is). ENOEXEC when `head` is not a script,
/// names no interpreter, or cuts the interpreter's name short.
pub fn parse(head: &[u8]) -> Result<Shebang<'_>, Errno> {
    if !is_script(head) {
        return Err(ENOEXEC);
    }
    let n = head.len().min(BUF_SIZE);
    let at = |i: usize| if i < n { head[i] } else { 0 };
    // The last byte of the buffer never belongs to the line.
    let buf_end = BUF_SIZE - 1;
    // The line ends at the first newline before any NUL...
    let newline = (0..BUF_SIZE).take_while(|&i| at(i) != 0).find(|&i| at(i) == b'\n');
    let mut end = match newline {
        Some(nl) => nl,
        None => {
            // ...else at the buffer's end, if the name ends before it.
            let name = (2..buf_end).find(|&i| !spacetab(at(i))).ok_or(ENOEXEC)?;
            if !(name..buf_end).any(|i| terminator(at(i))) {
                return Err(ENOEXEC);
            }
            buf_end
        }
    };
    while spacetab(at(end - 1)) {
        end -= 1;
    }
    let name = (2..end).find(|&i| !spacetab(at(i))).ok_or(ENOEXEC)?;
    let sep = (name..end).find(|&i| terminator(at(i)));
    let arg = match sep {
        Some(s) if at(s) != 0 => (s..end).find(|&i| !spacetab(at(i))),
        _ => None,
    };
    // Both end at a NUL, as the C strings Linux passes on.
    let cstr = |from: usize, to: usize| {
        let s = &head[from.min(n)..to.min(n)];
        &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
    };
    Ok(Shebang { interp: cstr(name, sep.unwrap_or(end)), arg: arg.map(|a| cstr(a, end)) })
}

/// Count one more interpreter rewrite of an execve (`done` so far):
/// ELOOP past Linux's limit.
pub fn next_rewrite(done: usize) -> Result<usize, Errno> {
    if done >= MAX_REWRITES {
        Err(ELOOP)
    } else {
        Ok(done + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8]) -> Result<(&[u8], Option<&[u8]>), Errno> {
        parse(s).map(|s| (s.interp, s.arg))
    }

    #[test]
    fn interpreter_and_one_argument() {
        assert_eq!(p(b"#!/bin/sh\necho hi\n"), Ok((&b"/bin/sh"[..], None)));
        assert_eq!(p(b"#! /usr/bin/env python3\n"), Ok((&b"/usr/bin/env"[..], Some(&b"python3"[..]))));
        // One argument, spaces inside kept, around trimmed.
        assert_eq!(p(b"#!/bin/awk  -f  x \t\nBEGIN{}"), Ok((&b"/bin/awk"[..], Some(&b"-f  x"[..]))));
        assert_eq!(p(b"#!\t/bin/sh\t\n"), Ok((&b"/bin/sh"[..], None)));
        // No newline at all in a short file: the whole file is the line,
        // trailing blanks of the argument kept (the NUL padding ends it).
        assert_eq!(p(b"#!/bin/true"), Ok((&b"/bin/true"[..], None)));
        assert_eq!(p(b"#!/bin/echo -x  "), Ok((&b"/bin/echo"[..], Some(&b"-x  "[..]))));
        // A NUL ends the name and drops the rest.
        assert_eq!(p(b"#!/bin/sh\0-x\n"), Ok((&b"/bin/sh"[..], None)));
        assert_eq!(p(b"#!/bin/sh -x\0y\n"), Ok((&b"/bin/sh"[..], Some(&b"-x"[..]))));
    }

    #[test]
    fn not_a_script_or_no_interpreter() {
        assert_eq!(p(b"\x7fELF"), Err(ENOEXEC));
        assert_eq!(p(b"#"), Err(ENOEXEC));
        assert_eq!(p(b"#!\n/bin/sh"), Err(ENOEXEC));
        assert_eq!(p(b"#!   \t \n"), Err(ENOEXEC));
        assert!(!is_script(b"echo hi"));
    }

    #[test]
    fn long_first_lines() {
        // The name fits and a space follows: the argument is cut at 255.
        let mut v = b"#!/bin/sh ".to_vec();
        v.resize(400, b'a');
        let s = parse(&v).unwrap();
        assert_eq!(s.interp, b"/bin/sh");
        assert_eq!(s.arg.unwrap().len(), BUF_SIZE - 1 - 10);
        // The name itself does not end inside the buffer: ENOEXEC.
        let mut long = b"#!/".to_vec();
        long.resize(400, b'x');
        assert_eq!(p(&long), Err(ENOEXEC));
        // A newline past the buffer does not count.
        let mut late = b"#!/".to_vec();
        late.resize(300, b'x');
        late.push(b'\n');
        assert_eq!(p(&late), Err(ENOEXEC));
    }

    #[test]
    fn rewrites_stop_at_linux_limit() {
        let mut n = 0;
        for _ in 0..MAX_REWRITES {
            n = next_rewrite(n).unwrap();
        }
        assert_eq!(next_rewrite(n), Err(ELOOP));
    }
}
