/* Private file mappings filled on demand (docs/memory.md), printing only
 * results that are the same on Linux and on the LWK.
 * usage: lazymap <scratch-dir> semantics
 *        lazymap <scratch-dir> sparse <MiB> <pages>   (then waits for a line on stdin)
 *        lazymap <scratch-dir> hold <MiB> <pages>     (touches, then sleeps until killed)
 *        lazymap <scratch-dir> windows <rounds>       (shared mappings made and dropped)
 *        lazymap <file> ro reader|writer              (maps the file read-only, reads it all,
 *                                                       waits for a line; a writer then makes it
 *                                                       writable and writes it) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(c, what) do { if (!(c)) { printf("FAIL %s: %s\n", what, strerror(errno)); return 1; } } while (0)

static long pg;
static char path[4096];

/* A file of `pages` pages whose byte i is pattern(i). */
static unsigned char pattern(long i) { return (unsigned char)(i * 7 + i / 4096 + 3); }

static int mkfile(const char *dir, const char *name, long pages) {
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    unsigned char *buf = malloc(pages * pg);
    for (long i = 0; i < pages * pg; i++) buf[i] = pattern(i);
    if (write(fd, buf, pages * pg) != pages * pg) return -1;
    free(buf);
    return fd;
}

/* Whether page `n` of mapping `p` (of the file from page `base`) holds
 * the file's bytes. */
static int file_page_at(const unsigned char *p, long n, long base) {
    for (long i = n * pg; i < (n + 1) * pg; i += 97)
        if (p[i] != pattern(i + base * pg)) return 0;
    return 1;
}

static int is_file_page(const unsigned char *p, long n) { return file_page_at(p, n, 0); }

static int semantics(const char *dir) {
    /* 4 MiB: mappings of the whole file start on a 2 MiB boundary, so no
     * other mapping shares their first mirror granule (docs/memory.md). */
    const long n = 1024;
    int fd = mkfile(dir, "lazy.bin", n);
    CHECK(fd >= 0, "create lazy.bin");

    /* A write to the file before the mapping's page is touched shows in it
     * (an unmodified private page reflects the file). */
    unsigned char *p = mmap(NULL, n * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    CHECK(p != MAP_FAILED, "mmap private");
    CHECK(pwrite(fd, "LINUX", 5, 20 * pg + 8) == 5, "pwrite");
    printf("file write before first touch shows: %d\n", memcmp(p + 20 * pg + 8, "LINUX", 5) == 0);
    /* A private write stays private: the file keeps its bytes. */
    p[3 * pg] = 0xee;
    unsigned char b = 0;
    CHECK(pread(fd, &b, 1, 3 * pg) == 1, "pread");
    printf("private write: mapping %02x, file unchanged %d\n", p[3 * pg], b == pattern(3 * pg));
    printf("untouched pages hold the file: %d %d\n", is_file_page(p, 0), is_file_page(p, n - 1));

    /* The proxy reads and writes never-touched pages for offloaded calls
     * (write from the mapping, read into it), and the kernel reads them. */
    unsigned char *q = mmap(NULL, n * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    CHECK(q != MAP_FAILED, "mmap second");
    int out = open(dir, O_TMPFILE | O_RDWR, 0600);
    CHECK(out >= 0, "O_TMPFILE");
    CHECK(write(out, q + 9 * pg, 3 * pg) == 3 * pg, "write from a never-touched page");
    unsigned char *chk = malloc(3 * pg);
    CHECK(pread(out, chk, 3 * pg, 0) == 3 * pg, "pread back");
    printf("write from untouched pages: %d\n", memcmp(chk, q + 9 * pg, 3 * pg) == 0 && is_file_page(q, 10));
    memset(chk, 0x5a, 3 * pg);
    CHECK(pwrite(out, chk, 3 * pg, 0) == 3 * pg, "pwrite tmp");
    CHECK(pread(out, q + 25 * pg, 3 * pg, 0) == 3 * pg, "read into a never-touched page");
    printf("read into untouched pages: %d, neighbours from the file: %d\n", q[25 * pg] == 0x5a && q[28 * pg - 1] == 0x5a,
           is_file_page(q, 24) && is_file_page(q, 28));
    /* A buffer touched at both ends only (8 MiB: the middle granules are
     * not backed yet) written whole by one offloaded call. */
    const long wn = 2048;
    int wfd = mkfile(dir, "wide.bin", wn);
    CHECK(wfd >= 0, "create wide.bin");
    unsigned char *w = mmap(NULL, wn * pg, PROT_READ, MAP_PRIVATE, wfd, 0);
    CHECK(w != MAP_FAILED, "mmap wide");
    volatile unsigned char ends = w[0] ^ w[wn * pg - 1];
    (void)ends;
    CHECK(ftruncate(out, 0) == 0, "ftruncate tmp");
    long wrote = pwrite(out, w, wn * pg, 0);
    int same = wrote == wn * pg;
    unsigned char *back = malloc(pg);
    for (long i = 0; same && i < wn; i += 97)
        same = pread(out, back, pg, i * pg) == pg && file_page_at(back, 0, i);
    printf("write of a buffer touched at both ends only: %d\n", same);
    free(back);
    munmap(w, wn * pg);
    close(wfd);
    close(out);
    /* A path string in a never-touched page, read by a system call. */
    char *r = mmap(NULL, n * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    CHECK(r != MAP_FAILED, "mmap third");
    CHECK(pwrite(fd, "/proc/self/status", 18, 2 * pg + 100) == 18, "pwrite path");
    int st = open(r + 2 * pg + 100, O_RDONLY);
    printf("open with a path in an untouched page: %d\n", st >= 0);
    if (st >= 0) close(st);
    munmap(r, n * pg);

    /* fork: both sides see their own writes only; pages never touched come
     * from the file in the child too. */
    unsigned char *f = mmap(NULL, 16 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    CHECK(f != MAP_FAILED, "mmap fork");
    f[0] = 'P';
    pid_t c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        int ok = f[0] == 'P' && is_file_page(f, 7) && is_file_page(f, 15);
        f[7 * pg] = 'C';
        f[0] = 'c';
        _exit(ok && f[7 * pg] == 'C' ? 0 : 1);
    }
    int ws;
    CHECK(waitpid(c, &ws, 0) == c, "waitpid");
    printf("fork: child saw parent's page and the file: %d, parent keeps its own: %d %d\n",
           WIFEXITED(ws) && WEXITSTATUS(ws) == 0, f[0] == 'P', f[7 * pg] == pattern(7 * pg));

    /* munmap of a middle page, mprotect to none and back, mremap growth in
     * place and by moving: untouched pages still come from the file,
     * written ones keep their bytes. */
    unsigned char *m = mmap(NULL, 8 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    CHECK(m != MAP_FAILED, "mmap m");
    m[pg] = 'W';
    CHECK(munmap(m + 2 * pg, pg) == 0, "munmap middle");
    CHECK(mprotect(m + 3 * pg, 2 * pg, PROT_NONE) == 0, "mprotect none");
    CHECK(mprotect(m + 3 * pg, 2 * pg, PROT_READ | PROT_WRITE) == 0, "mprotect back");
    printf("after munmap/mprotect: %d %d %d\n", m[pg] == 'W', is_file_page(m, 3), is_file_page(m, 4));
    /* The tail [3, 8) grows to [3, 16) (moving if it must). */
    unsigned char *g = mremap(m + 3 * pg, 5 * pg, 13 * pg, MREMAP_MAYMOVE);
    CHECK(g != MAP_FAILED, "mremap");
    g[pg] = 'M';
    printf("after mremap: %d %d %d\n", g[pg] == 'M', file_page_at(g, 0, 3), file_page_at(g, 12, 3));
    unsigned char *h = mremap(g, 13 * pg, 13 * pg + 4 * pg, MREMAP_MAYMOVE);
    CHECK(h != MAP_FAILED, "mremap 2");
    printf("after mremap again: %d %d %d\n", h[pg] == 'M', file_page_at(h, 2, 3), file_page_at(h, 15, 3));

    /* MREMAP_FIXED: anonymous memory moved (and grown) over another
     * mapping, which goes; the old range is unmapped; a file mapping moved
     * keeps its written page and its untouched file pages. */
    unsigned char *an = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *tg = mmap(NULL, 8 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(an != MAP_FAILED && tg != MAP_FAILED, "mmap fixed");
    for (int i = 0; i < 4; i++) an[i * pg] = (unsigned char)('a' + i);
    for (int i = 0; i < 8; i++) tg[i * pg] = 'T';
    errno = 0;
    int e1 = mremap(an, 4 * pg, 4 * pg, MREMAP_FIXED, tg) == MAP_FAILED && errno == EINVAL;
    errno = 0;
    int e2 = mremap(an, 4 * pg, 4 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, an + pg) == MAP_FAILED && errno == EINVAL;
    errno = 0;
    int e3 = mremap(an, 4 * pg, 4 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, tg + 1) == MAP_FAILED && errno == EINVAL;
    unsigned char *mv = mremap(an, 4 * pg, 6 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, tg + pg);
    CHECK(mv != MAP_FAILED, "mremap fixed");
    errno = 0;
    int gone = mprotect(an, pg, PROT_READ) == -1 && errno == ENOMEM;
    printf("mremap fixed: errors %d %d %d, at %d, moved %d %d, grown zero %d, rest kept %d %d, old gone %d\n", e1, e2, e3,
           mv == tg + pg, mv[0] == 'a', mv[3 * pg] == 'd', mv[5 * pg] == 0, tg[0] == 'T', tg[7 * pg] == 'T', gone);
    unsigned char *fm = mmap(NULL, 8 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    CHECK(fm != MAP_FAILED, "mmap file fixed");
    fm[pg] = 'F';
    unsigned char *fmv = mremap(fm, 8 * pg, 4 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, tg);
    CHECK(fmv == tg, "mremap file fixed");
    errno = 0;
    int fgone = mprotect(fm + 6 * pg, pg, PROT_READ) == -1 && errno == ENOMEM;
    printf("mremap fixed file: %d %d %d, next mapping kept %d, old range gone %d\n", fmv[pg] == 'F', is_file_page(fmv, 0),
           is_file_page(fmv, 3), tg[4 * pg] == 'd', fgone);
    return 0;
}

/* A sparse file of `mib` MiB mapped private; `pages` pages spread over it
 * are read and written. */
static unsigned char *sparse(const char *dir, long mib, long pages) {
    snprintf(path, sizeof path, "%s/sparse.bin", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, mib << 20) != 0) return NULL;
    if (pwrite(fd, "END", 3, (mib << 20) - 3) != 3) return NULL;
    unsigned char *p = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) return NULL;
    close(fd);
    long step = (mib << 20) / pages;
    int zero = 1;
    for (long i = 0; i < pages; i++) {
        zero &= p[i * step] == 0;
        p[i * step + 1] = (unsigned char)i;
    }
    printf("sparse: %ld MiB, %ld pages touched, zero %d, end %d\n", mib, pages, zero,
           memcmp(p + (mib << 20) - 3, "END", 3) == 0);
    return p;
}

/* MAP_SHARED mappings (share windows on the LWK) made, stored to and
 * unmapped in a loop, anonymous and of a file: each must be given back
 * (mcexec keeps a descriptor per window while it is mapped). */
static int windows(const char *dir, int rounds) {
    snprintf(path, sizeof path, "%s/shared.bin", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, pg) == 0, "create shared.bin");
    for (int i = 0; i < rounds; i++) {
        char *a = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        CHECK(a != MAP_FAILED, "mmap shared anonymous");
        a[0] = (char)i;
        CHECK(munmap(a, pg) == 0, "munmap anonymous");
        char *f = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(f != MAP_FAILED, "mmap shared file");
        f[1] = (char)i;
        CHECK(munmap(f, pg) == 0, "munmap file");
    }
    char b = 0;
    CHECK(pread(fd, &b, 1, 1) == 1, "pread");
    printf("windows: %d rounds, last store in the file %d\n", rounds, b == (char)(rounds - 1));
    return 0;
}

static unsigned long sum(const unsigned char *p, long len) {
    unsigned long s = 0;
    for (long i = 0; i < len; i++) s = s * 31 + p[i];
    return s;
}

/* A read-only private mapping of a whole file, read all; then, after a
 * line on stdin, the reader reads it again and the writer writes it. */
static int ro(const char *file, int writer) {
    int fd = open(file, O_RDONLY);
    CHECK(fd >= 0, "open");
    long len = lseek(fd, 0, SEEK_END);
    unsigned char *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK(p != MAP_FAILED, "mmap");
    close(fd);
    printf("sum %lx\nready\n", sum(p, len));
    char line[16];
    if (!fgets(line, sizeof line, stdin)) return 1;
    if (writer) {
        CHECK(mprotect(p, len, PROT_READ | PROT_WRITE) == 0, "mprotect");
        p[0] ^= 0xff;
        p[len - 1] ^= 0xff;
        p[0] ^= 0xff;
        p[len - 1] ^= 0xff;
        p[len / 2] = (unsigned char)(p[len / 2] + 1);
        printf("written sum %lx\n", sum(p, len));
    } else {
        printf("sum %lx\n", sum(p, len));
    }
    return 0;
}

int main(int argc, char **argv) {
    pg = sysconf(_SC_PAGESIZE);
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc >= 3 && strcmp(argv[2], "semantics") == 0) return semantics(argv[1]);
    if (argc >= 4 && strcmp(argv[2], "windows") == 0) return windows(argv[1], atoi(argv[3]));
    if (argc >= 4 && strcmp(argv[2], "ro") == 0) return ro(argv[1], strcmp(argv[3], "writer") == 0);
    if (argc >= 5 && (strcmp(argv[2], "sparse") == 0 || strcmp(argv[2], "hold") == 0)) {
        unsigned char *p = sparse(argv[1], atol(argv[3]), atol(argv[4]));
        CHECK(p != NULL, "sparse mapping");
        printf("ready\n");
        if (strcmp(argv[2], "hold") == 0)
            for (;;) pause();
        char line[16];
        if (!fgets(line, sizeof line, stdin)) return 1;
        printf("bye %d\n", p[1] == 0);
        return 0;
    }
    fprintf(stderr, "usage\n");
    return 2;
}
