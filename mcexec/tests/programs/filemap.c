/* File-backed mmap and the single-threaded calls of issue #4, printing
 * only results that are the same on Linux and on the LWK.
 * usage: filemap <scratch-dir> <shared-MiB> */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#define CHECK(c, what) do { if (!(c)) { printf("FAIL %s: %s\n", what, strerror(errno)); return 1; } } while (0)

static char path[4096];

static int mkfile(const char *dir, const char *name, size_t len, int seed) {
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    char *buf = malloc(len);
    for (size_t i = 0; i < len; i++) buf[i] = (char)(i * 13 + seed);
    if (write(fd, buf, len) != (ssize_t)len) return -1;
    free(buf);
    return fd;
}

int main(int argc, char **argv) {
    const char *dir = argv[1];
    size_t mib = (size_t)atol(argv[2]);
    long pg = sysconf(_SC_PAGESIZE);

    /* MAP_PRIVATE: contents of the file, private copy on write. */
    int fd = mkfile(dir, "private.bin", 3 * pg + 100, 1);
    CHECK(fd >= 0, "create private.bin");
    unsigned char *p = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    CHECK(p != MAP_FAILED, "mmap private");
    int same = 1;
    for (long i = 0; i < 3 * pg + 100; i++) same &= p[i] == (unsigned char)(i * 13 + 1);
    printf("private contents match: %d, tail zero: %d\n", same, p[3 * pg + 100] == 0 && p[4 * pg - 1] == 0);
    p[0] = 0xee;
    unsigned char b0;
    CHECK(pread(fd, &b0, 1, 0) == 1, "pread");
    printf("private write stays private: %d\n", b0 == 1);
    /* Offset mapping and mprotect. */
    unsigned char *q = mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, 2 * pg);
    CHECK(q != MAP_FAILED, "mmap offset");
    printf("offset mapping: %d\n", q[5] == (unsigned char)((2 * pg + 5) * 13 + 1));
    CHECK(mprotect(q, pg, PROT_READ | PROT_WRITE) == 0, "mprotect");
    q[0] = 1;
    CHECK(mprotect(q, pg, PROT_NONE) == 0, "mprotect none");
    CHECK(mprotect(q, pg, PROT_READ) == 0, "mprotect read");
    printf("mprotect keeps contents: %d %d\n", q[0] == 1, q[6] == (unsigned char)((2 * pg + 6) * 13 + 1));
    /* PROT_EXEC of a file. */
    unsigned char *x = mmap(NULL, pg, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    printf("prot_exec: %d\n", x != MAP_FAILED && x[1] == (unsigned char)(13 + 1));
    /* MAP_FIXED replaces, MAP_FIXED_NOREPLACE refuses. */
    unsigned char *f = mmap(p + pg, pg, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
    printf("map_fixed: %d %d\n", f == p + pg, f[1] == (unsigned char)(13 + 1));
    void *nr = mmap(p, pg, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0);
    printf("map_fixed_noreplace: %s\n", nr == MAP_FAILED ? strerror(errno) : "mapped");
    /* Write-only descriptors cannot be mapped; read-only ones not shared-writable. */
    int wfd = open(path, O_WRONLY);
    errno = 0;
    printf("mmap O_WRONLY: %s\n", mmap(NULL, pg, PROT_READ, MAP_PRIVATE, wfd, 0) == MAP_FAILED ? strerror(errno) : "mapped");
    int rfd = open(path, O_RDONLY);
    errno = 0;
    printf("shared writable O_RDONLY: %s\n",
           mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, rfd, 0) == MAP_FAILED ? strerror(errno) : "mapped");
    errno = 0;
    printf("bad fd: %s\n", mmap(NULL, pg, PROT_READ, MAP_PRIVATE, 999, 0) == MAP_FAILED ? strerror(errno) : "mapped");
    munmap(p, 4 * pg);

    /* MAP_SHARED: msync writes back, munmap writes back, the file does not
     * grow through the mapping. */
    int sfd = mkfile(dir, "msync.bin", pg + 10, 2);
    CHECK(sfd >= 0, "create msync.bin");
    unsigned char *s = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
    CHECK(s != MAP_FAILED, "mmap shared");
    s[3] = 'M';
    CHECK(msync(s, 2 * pg, MS_SYNC) == 0, "msync");
    CHECK(pread(sfd, &b0, 1, 3) == 1, "pread");
    printf("msync writes back: %d\n", b0 == 'M');
    s[4] = 'U';
    close(sfd);
    CHECK(munmap(s, 2 * pg) == 0, "munmap");
    struct stat st;
    int cfd = open(path, O_RDONLY);
    CHECK(pread(cfd, &b0, 1, 4) == 1 && fstat(cfd, &st) == 0, "reread");
    printf("munmap writes back: %d, size %ld\n", b0 == 'U', (long)st.st_size - pg);
    errno = 0;
    printf("msync unmapped: %s\n", msync(s, pg, MS_SYNC) ? strerror(errno) : "ok");

    /* A read-only shared mapping never writes back over others' changes. */
    int ofd = mkfile(dir, "ro.bin", pg, 3);
    CHECK(ofd >= 0, "create ro.bin");
    unsigned char *ro = mmap(NULL, pg, PROT_READ, MAP_SHARED, ofd, 0);
    CHECK(ro != MAP_FAILED, "mmap read-only shared");
    unsigned char z = 'Z';
    CHECK(pwrite(ofd, &z, 1, 0) == 1, "pwrite");
    CHECK(munmap(ro, pg) == 0, "munmap read-only shared");
    CHECK(pread(ofd, &b0, 1, 0) == 1, "pread");
    printf("read-only shared mapping keeps others' writes: %d\n", b0 == 'Z');

    /* A big shared mapping written and left to exit. */
    snprintf(path, sizeof path, "%s/shared.bin", dir);
    int bfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(bfd >= 0 && ftruncate(bfd, mib << 20) == 0, "create shared.bin");
    unsigned char *big = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_SHARED, bfd, 0);
    CHECK(big != MAP_FAILED, "mmap big");
    close(bfd);
    for (size_t i = 0; i < mib << 20; i++) big[i] = (unsigned char)(i * 7 + (i >> 20));

    /* Calls of item 4. */
    unsigned char rnd[64] = {0};
    printf("getrandom: %ld\n", (long)getrandom(rnd, sizeof rnd, 0));
    struct rlimit rl;
    printf("prlimit64 NOFILE: %d\n", prlimit(0, RLIMIT_NOFILE, NULL, &rl) == 0 && rl.rlim_cur > 0);
    struct sysinfo si;
    printf("sysinfo: %d\n", sysinfo(&si) == 0 && si.totalram > 0 && si.freeram <= si.totalram && si.mem_unit > 0);
    struct rusage ru;
    printf("getrusage: %d\n", getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_maxrss > 0);
    errno = 0;
    printf("getrusage bad who: %s\n", getrusage(42, &ru) ? strerror(errno) : "ok");
    unsigned char *a = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    a[0] = 9;
    CHECK(madvise(a, 4 * pg, MADV_DONTNEED) == 0, "madvise");
    printf("madvise dontneed zeroes: %d\n", a[0] == 0);
    unsigned char vec[4];
    a[0] = 1;
    int mc = mincore(a, 4 * pg, vec);
    printf("mincore: %d, first resident %d\n", mc, vec[0] & 1);
    errno = 0;
    printf("mincore unaligned: %s\n", mincore(a + 1, pg, vec) ? strerror(errno) : "ok");
    struct sigaction sa = {0}, old;
    sa.sa_handler = SIG_IGN;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR1, NULL, &old);
    printf("rt_sigaction recorded: %d\n", old.sa_handler == SIG_IGN);
    sigset_t set, cur;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sigprocmask(SIG_BLOCK, NULL, &cur);
    printf("rt_sigprocmask recorded: %d\n", sigismember(&cur, SIGUSR2));
    return 0;
}
