/* AVX2 state check for the hardware-virtualization run (scripts/hwvirt-check.sh).
 *
 * Built with `gcc -static -O2 -mavx2`, run on the LWK through mcexec. It
 *  1. checks that the OS enabled AVX (CPUID.OSXSAVE, XCR0 bits 1-2) and
 *     prints XCR0;
 *  2. computes an AVX2 integer kernel and compares it with scalar code;
 *  3. loads distinct patterns into all 16 YMM registers, raises a signal
 *     whose handler overwrites every YMM register, and checks the patterns
 *     after sigreturn (the signal frame's XSAVE image);
 *  4. forks: parent and child (two LWK processes on the same LWK CPU) each
 *     hold their own patterns in all YMM registers while they ping-pong a
 *     byte through two pipes (each blocking read switches to the other
 *     process) and call sched_yield(), and check their registers after
 *     every round (the scheduler's XSAVE/XRSTOR).
 * Prints one line "avx-check: ok ..." and exits 0, or "avx-check: FAIL ..."
 * and exits 1.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <immintrin.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static uint8_t want[16][32] __attribute__((aligned(32)));
static uint8_t got[16][32] __attribute__((aligned(32)));
static volatile int handler_ran;
enum { ROUNDS = 100 };

static void fill(uint32_t seed)
{
    for (int r = 0; r < 16; r++)
        for (int b = 0; b < 32; b++)
            want[r][b] = (uint8_t)(seed * 131 + r * 37 + b * 11 + (b >> 4) * 97);
}

#define LOAD_ALL(p)                                                                     \
    __asm__ volatile("vmovdqa 0(%0),%%ymm0\n\tvmovdqa 32(%0),%%ymm1\n\t"                \
                     "vmovdqa 64(%0),%%ymm2\n\tvmovdqa 96(%0),%%ymm3\n\t"               \
                     "vmovdqa 128(%0),%%ymm4\n\tvmovdqa 160(%0),%%ymm5\n\t"             \
                     "vmovdqa 192(%0),%%ymm6\n\tvmovdqa 224(%0),%%ymm7\n\t"             \
                     "vmovdqa 256(%0),%%ymm8\n\tvmovdqa 288(%0),%%ymm9\n\t"             \
                     "vmovdqa 320(%0),%%ymm10\n\tvmovdqa 352(%0),%%ymm11\n\t"           \
                     "vmovdqa 384(%0),%%ymm12\n\tvmovdqa 416(%0),%%ymm13\n\t"           \
                     "vmovdqa 448(%0),%%ymm14\n\tvmovdqa 480(%0),%%ymm15\n\t" ::"r"(p)  \
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",  \
                       "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",     \
                       "xmm15", "memory")

#define STORE_ALL(p)                                                                    \
    __asm__ volatile("vmovdqa %%ymm0,0(%0)\n\tvmovdqa %%ymm1,32(%0)\n\t"                \
                     "vmovdqa %%ymm2,64(%0)\n\tvmovdqa %%ymm3,96(%0)\n\t"               \
                     "vmovdqa %%ymm4,128(%0)\n\tvmovdqa %%ymm5,160(%0)\n\t"             \
                     "vmovdqa %%ymm6,192(%0)\n\tvmovdqa %%ymm7,224(%0)\n\t"             \
                     "vmovdqa %%ymm8,256(%0)\n\tvmovdqa %%ymm9,288(%0)\n\t"             \
                     "vmovdqa %%ymm10,320(%0)\n\tvmovdqa %%ymm11,352(%0)\n\t"           \
                     "vmovdqa %%ymm12,384(%0)\n\tvmovdqa %%ymm13,416(%0)\n\t"           \
                     "vmovdqa %%ymm14,448(%0)\n\tvmovdqa %%ymm15,480(%0)\n\t" ::"r"(p)  \
                     : "memory")

/* A raw system call that touches no vector register between LOAD and STORE. */
static inline long raw_syscall3(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
}

static int compare(const char *what, int round)
{
    for (int r = 0; r < 16; r++)
        if (memcmp(want[r], got[r], 32) != 0) {
            printf("avx-check: FAIL %s: ymm%d differs (round %d, pid %d): byte 0 %02x want %02x, byte 31 %02x want %02x\n",
                   what, r, round, getpid(), got[r][0], want[r][0], got[r][31], want[r][31]);
            return 1;
        }
    return 0;
}

static void handler(int sig)
{
    (void)sig;
    /* Overwrite every YMM register (upper halves included). */
    static uint8_t junk[16][32] __attribute__((aligned(32)));
    memset(junk, 0xa5, sizeof junk);
    LOAD_ALL(junk);
    handler_ran++;
}

static int check_kernel(void)
{
    enum { N = 4096 };
    static int32_t a[N], b[N], c[N];
    for (int i = 0; i < N; i++) {
        a[i] = i * 7 - 3000;
        b[i] = (i * 2654435761u) >> 7;
    }
    for (int i = 0; i < N; i += 8) {
        __m256i va = _mm256_loadu_si256((const __m256i *)&a[i]);
        __m256i vb = _mm256_loadu_si256((const __m256i *)&b[i]);
        __m256i v = _mm256_add_epi32(_mm256_mullo_epi32(va, vb), _mm256_srli_epi32(vb, 3));
        _mm256_storeu_si256((__m256i *)&c[i], v);
    }
    for (int i = 0; i < N; i++) {
        int32_t s = (int32_t)((uint32_t)a[i] * (uint32_t)b[i] + ((uint32_t)b[i] >> 3));
        if (c[i] != s) {
            printf("avx-check: FAIL AVX2 kernel: c[%d] = %d, scalar %d\n", i, c[i], s);
            return 1;
        }
    }
    return 0;
}

static int check_signal(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0) {
        printf("avx-check: FAIL sigaction\n");
        return 1;
    }
    long pid = getpid(); /* no function call between LOAD_ALL and STORE_ALL */
    for (int round = 0; round < 20; round++) {
        fill(1000 + round);
        int before = handler_ran;
        LOAD_ALL(want);
        raw_syscall3(SYS_kill, pid, SIGUSR1, 0);
        STORE_ALL(got);
        if (handler_ran != before + 1) {
            printf("avx-check: FAIL signal handler did not run (round %d)\n", round);
            return 1;
        }
        if (compare("after signal handler", round))
            return 1;
    }
    return 0;
}

/* Ping-pong with the other process through two pipes while holding the
 * patterns in the registers: each blocking read makes the LWK switch to the
 * other process, which loads its own patterns; sched_yield() switches too. */
static int check_switches(int seed, int rounds, int rfd, int wfd, int first_write)
{
    char byte = 'x';
    fill(seed);
    for (int round = 0; round < rounds; round++) {
        long r1, r2;
        LOAD_ALL(want);
        if (first_write) {
            r1 = raw_syscall3(SYS_write, wfd, (long)&byte, 1);
            r2 = raw_syscall3(SYS_read, rfd, (long)&byte, 1);
        } else {
            r1 = raw_syscall3(SYS_read, rfd, (long)&byte, 1);
            r2 = raw_syscall3(SYS_write, wfd, (long)&byte, 1);
        }
        raw_syscall3(SYS_sched_yield, 0, 0, 0);
        STORE_ALL(got);
        if (r1 != 1 || r2 != 1) {
            printf("avx-check: FAIL pipe ping-pong (round %d, pid %d): %ld %ld\n", round, getpid(), r1, r2);
            return 1;
        }
        if (compare("after context switch", round))
            return 1;
    }
    return 0;
}

int main(void)
{
    unsigned eax, ebx, ecx, edx;
    __cpuid(1, eax, ebx, ecx, edx);
    if (!(ecx & bit_OSXSAVE)) {
        printf("avx-check: FAIL CPUID.1:ECX.OSXSAVE is 0 (the kernel did not enable XSAVE)\n");
        return 1;
    }
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    uint64_t xcr0 = ((uint64_t)hi << 32) | lo;
    if ((xcr0 & 6) != 6) {
        printf("avx-check: FAIL XCR0 = %#llx: AVX state not enabled\n", (unsigned long long)xcr0);
        return 1;
    }
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    if (!(ebx & bit_AVX2)) {
        printf("avx-check: FAIL CPUID.7:EBX.AVX2 is 0\n");
        return 1;
    }
    if (check_kernel() || check_signal())
        return 1;

    int p2c[2], c2p[2];
    if (pipe(p2c) != 0 || pipe(c2p) != 0) {
        printf("avx-check: FAIL pipe\n");
        return 1;
    }
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        printf("avx-check: FAIL fork\n");
        return 1;
    }
    if (child == 0)
        _exit(check_switches(7, ROUNDS, p2c[0], c2p[1], 0));
    int bad = check_switches(3, ROUNDS, c2p[0], p2c[1], 1);
    int status = 0;
    if (waitpid(child, &status, 0) != child) {
        printf("avx-check: FAIL waitpid\n");
        return 1;
    }
    if (bad || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("avx-check: FAIL context switches (parent %s, child status %#x)\n", bad ? "bad" : "ok", status);
        return 1;
    }
    printf("avx-check: ok xcr0=%#llx AVX2 kernel, 20 signals, %d ping-pong rounds between 2 processes\n",
           (unsigned long long)xcr0, ROUNDS);
    return 0;
}
