/*
 * cma: cross-memory attach between two processes, as MPI libraries use it
 * for single-copy transfers (Open MPI's vader "cma"). The parent fills
 * 1 MiB with a pattern and forks; the child reads it with
 * process_vm_readv from the parent's pid, checks every byte, and writes a
 * reply into the parent's memory with process_vm_writev. Then the roles
 * swap through a pipe: the parent reads the child's buffer. Prints
 * "cma: read ok, write ok, reverse ok" and exits 0, or names what failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIZE (1 << 20)

static unsigned char pattern(size_t i, int salt) { return (unsigned char)(i * 131 + (i >> 12) + salt); }

static int check(const unsigned char *b, int salt)
{
    for (size_t i = 0; i < SIZE; i++)
        if (b[i] != pattern(i, salt))
            return 0;
    return 1;
}

int main(void)
{
    unsigned char *src = malloc(SIZE), *reply = calloc(1, 64), *got = malloc(SIZE);
    int to_parent[2], to_child[2];
    if (!src || !reply || !got || pipe(to_parent) || pipe(to_child)) {
        perror("cma: setup");
        return 2;
    }
    for (size_t i = 0; i < SIZE; i++)
        src[i] = pattern(i, 1);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) {
        perror("cma: fork");
        return 2;
    }
    if (child == 0) {
        struct iovec local = {got, SIZE}, remote = {src, SIZE};
        ssize_t n = process_vm_readv(parent, &local, 1, &remote, 1, 0);
        if (n != SIZE || !check(got, 1)) {
            fprintf(stderr, "cma: child read %zd: %s\n", n, n < 0 ? strerror(errno) : "wrong bytes");
            _exit(1);
        }
        static const char msg[] = "written by the child";
        struct iovec l2 = {(void *)msg, sizeof msg}, r2 = {reply, sizeof msg};
        n = process_vm_writev(parent, &l2, 1, &r2, 1, 0);
        if (n != (ssize_t)sizeof msg) {
            fprintf(stderr, "cma: child write %zd: %s\n", n, strerror(errno));
            _exit(1);
        }
        /* Now the parent reads this process's buffer. */
        for (size_t i = 0; i < SIZE; i++)
            got[i] = pattern(i, 2);
        unsigned long addr = (unsigned long)got;
        if (write(to_parent[1], &addr, sizeof addr) != sizeof addr)
            _exit(1);
        char done;
        if (read(to_child[0], &done, 1) != 1)
            _exit(1);
        _exit(0);
    }
    unsigned long addr;
    if (read(to_parent[0], &addr, sizeof addr) != sizeof addr) {
        fprintf(stderr, "cma: the child failed before the reverse step\n");
        return 1;
    }
    int write_ok = strcmp((char *)reply, "written by the child") == 0;
    memset(src, 0, SIZE);
    struct iovec local = {src, SIZE}, remote = {(void *)addr, SIZE};
    ssize_t n = process_vm_readv(child, &local, 1, &remote, 1, 0);
    int reverse_ok = n == SIZE && check(src, 2);
    if (!reverse_ok)
        fprintf(stderr, "cma: parent read %zd: %s\n", n, n < 0 ? strerror(errno) : "wrong bytes");
    if (write(to_child[1], "x", 1) != 1)
        return 2;
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "cma: the child failed (status %#x)\n", status);
        return 1;
    }
    printf("cma: read ok, write %s, reverse %s\n", write_ok ? "ok" : "WRONG", reverse_ok ? "ok" : "WRONG");
    return write_ok && reverse_ok ? 0 : 1;
}
