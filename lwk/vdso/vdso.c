/*
 * The LWK's vDSO (AT_SYSINFO_EHDR): clock_gettime, gettimeofday, time,
 * clock_getres and getcpu answered in user mode where the LWK's clock
 * allows, from the data page the LWK maps read-only right below this image
 * (struct lwk_vvar, written by lwk/src/elf/vdso.rs when a program is
 * loaded). Every other case makes the real system call, so results are the
 * kernel's. The LWK's clock is the TSC from boot: realtime = boot_realtime
 * + (tsc - boot_tsc) * mult >> shift; MONOTONIC and BOOTTIME add the host's
 * offsets that mcexec measured for the process. Nothing here is ever
 * written, and the image has no relocations (glibc does not relocate a
 * vDSO).
 */
#include <stdint.h>

/* Must match `Vvar` in lwk/src/elf/vdso.rs. */
struct lwk_vvar {
	uint64_t magic;
	uint64_t boot_tsc;
	uint64_t boot_realtime_ns;
	uint64_t mult;
	uint64_t shift;
	int64_t monotonic_offset_ns;
	int64_t boottime_offset_ns;
	uint64_t flags;
};

#define LWK_VVAR_MAGIC 0x4c574b5676766172ULL /* "LWKVvvar" */

struct timespec_k { int64_t tv_sec; int64_t tv_nsec; };
struct timeval_k { int64_t tv_sec; int64_t tv_usec; };
struct timezone_k { int tz_minuteswest; int tz_dsttime; };

#define NSEC_PER_SEC 1000000000ULL

/* The ELF header of this image, one page above the data page. */
extern const char __ehdr_start[] __attribute__((visibility("hidden")));

static inline const volatile struct lwk_vvar *vvar(void)
{
	/* The compiler must not reason about the bounds of __ehdr_start. */
	const char *p = __ehdr_start;
	__asm__("" : "+r"(p));
	return (const volatile struct lwk_vvar *)(p - 4096);
}

#define EXPORT __attribute__((visibility("default")))

static inline long sys2(long nr, long a, long b)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "0"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
	return r;
}

static inline long sys3(long nr, long a, long b, long c)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "0"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}

static inline uint64_t rdtsc_ordered(void)
{
	uint32_t lo, hi;
	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
	return ((uint64_t)hi << 32) | lo;
}

/* Wall-clock ns now, or 0 if the data page is not the LWK's. */
static uint64_t realtime_ns(const volatile struct lwk_vvar *v)
{
	if (v->magic != LWK_VVAR_MAGIC)
		return 0;
	uint64_t ticks = rdtsc_ordered() - v->boot_tsc;
	if ((int64_t)ticks < 0)
		ticks = 0;
	unsigned __int128 p = (unsigned __int128)ticks * v->mult;
	return v->boot_realtime_ns + (uint64_t)(p >> v->shift);
}

/* ns on `clock`, or 0 when the kernel must answer. */
static uint64_t clock_ns(long clock)
{
	const volatile struct lwk_vvar *v = vvar();
	uint64_t rt;
	switch (clock) {
	case 0: /* CLOCK_REALTIME */
	case 5: /* CLOCK_REALTIME_COARSE */
		return realtime_ns(v);
	case 1: /* CLOCK_MONOTONIC */
	case 4: /* CLOCK_MONOTONIC_RAW */
	case 6: /* CLOCK_MONOTONIC_COARSE */
		rt = realtime_ns(v);
		return rt ? rt + (uint64_t)v->monotonic_offset_ns : 0;
	case 7: /* CLOCK_BOOTTIME */
		rt = realtime_ns(v);
		return rt ? rt + (uint64_t)v->boottime_offset_ns : 0;
	default:
		return 0;
	}
}

EXPORT int __vdso_clock_gettime(long clock, struct timespec_k *ts)
{
	uint64_t ns = clock_ns(clock);
	if (!ns)
		return (int)sys2(228 /* clock_gettime */, clock, (long)ts);
	ts->tv_sec = (int64_t)(ns / NSEC_PER_SEC);
	ts->tv_nsec = (int64_t)(ns % NSEC_PER_SEC);
	return 0;
}

EXPORT int __vdso_clock_getres(long clock, struct timespec_k *res)
{
	if (!clock_ns(clock))
		return (int)sys2(229 /* clock_getres */, clock, (long)res);
	if (res) {
		/* As the LWK's clock_getres: 1 ns. */
		res->tv_sec = 0;
		res->tv_nsec = 1;
	}
	return 0;
}

EXPORT int __vdso_gettimeofday(struct timeval_k *tv, struct timezone_k *tz)
{
	uint64_t ns = realtime_ns(vvar());
	if (!ns)
		return (int)sys2(96 /* gettimeofday */, (long)tv, (long)tz);
	if (tv) {
		tv->tv_sec = (int64_t)(ns / NSEC_PER_SEC);
		tv->tv_usec = (int64_t)(ns % NSEC_PER_SEC / 1000);
	}
	if (tz) {
		tz->tz_minuteswest = 0;
		tz->tz_dsttime = 0;
	}
	return 0;
}

EXPORT long __vdso_time(long *t)
{
	uint64_t ns = realtime_ns(vvar());
	if (!ns)
		return sys2(201 /* time */, (long)t, 0);
	long s = (long)(ns / NSEC_PER_SEC);
	if (t)
		*t = s;
	return s;
}

/* A thread may move between LWK CPUs at any time: the kernel answers. */
EXPORT long __vdso_getcpu(unsigned *cpu, unsigned *node, void *unused)
{
	return sys3(309 /* getcpu */, (long)cpu, (long)node, (long)unused);
}

int clock_gettime(long, struct timespec_k *) EXPORT __attribute__((weak, alias("__vdso_clock_gettime")));
int clock_getres(long, struct timespec_k *) EXPORT __attribute__((weak, alias("__vdso_clock_getres")));
int gettimeofday(struct timeval_k *, struct timezone_k *) EXPORT __attribute__((weak, alias("__vdso_gettimeofday")));
long time(long *) EXPORT __attribute__((weak, alias("__vdso_time")));
long getcpu(unsigned *, unsigned *, void *) EXPORT __attribute__((weak, alias("__vdso_getcpu")));
