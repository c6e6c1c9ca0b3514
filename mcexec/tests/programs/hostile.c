/* Hostile programs of issue 20 (item 3), one per argument; each prints what
 * it got, so the test compares with what Linux gives:
 *   stack      unbounded recursion: dies of SIGSEGV
 *   text       writes to its own code: dies of SIGSEGV
 *   mmap <MiB> maps and touches more memory than the partition has: prints
 *              "mmap: ENOMEM" (the LWK populates eagerly) or dies of a signal,
 *              then must still be able to map 1 MiB ("small: ok")
 *   forkbomb <n>  RLIMIT_NPROC = n, forks children that wait on a pipe until
 *              fork fails; prints "fork: EAGAIN after <k>", ends them all */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static int depth(int n) {
    volatile char pad[4096];
    pad[0] = (char)n;
    return depth(n + 1) + pad[0];
}

static int forkbomb(int limit) {
    struct rlimit rl = { (rlim_t)limit, (rlim_t)limit };
    if (setrlimit(RLIMIT_NPROC, &rl) != 0) {
        printf("setrlimit: %s\n", strerror(errno));
        return 1;
    }
    int p[2];
    if (pipe(p) != 0)
        return 1;
    int forks = 0;
    for (int i = 0; i < 4 * limit + 64; i++) {
        pid_t c = fork();
        if (c == 0) {
            char b;
            close(p[1]);
            while (read(p[0], &b, 1) < 0 && errno == EINTR)
                ;
            _exit(0);
        }
        if (c < 0) {
            printf("fork: %s after %d\n", errno == EAGAIN ? "EAGAIN" : strerror(errno), forks);
            break;
        }
        forks++;
    }
    if (forks == 4 * limit + 64)
        printf("fork: never failed (%d forks)\n", forks);
    close(p[1]);
    int reaped = 0;
    while (wait(NULL) > 0)
        reaped++;
    printf("reaped %d\n", reaped);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(argv[1], "stack")) {
        printf("recursing\n");
        return depth(0);
    }
    if (!strcmp(argv[1], "text")) {
        printf("writing to main\n");
        *(volatile unsigned char *)(void *)main = 0xc3;
        printf("text write survived\n");
        return 0;
    }
    if (!strcmp(argv[1], "mmap") && argc > 2) {
        size_t len = (size_t)atol(argv[2]) << 20;
        char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            printf("mmap: %s\n", errno == ENOMEM ? "ENOMEM" : strerror(errno));
        } else {
            for (size_t o = 0; o < len; o += 4096)
                m[o] = 1;
            printf("mmap: touched %zu MiB\n", len >> 20);
            munmap(m, len);
        }
        char *s = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (s == MAP_FAILED)
            return 1;
        s[0] = 1;
        printf("small: ok\n");
        return 0;
    }
    if (!strcmp(argv[1], "forkbomb") && argc > 2)
        return forkbomb(atoi(argv[2]));
    return 2;
}
