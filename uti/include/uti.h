/*
 * uti.h - Utility Thread offloading Interface (UTI).
 *
 * Create helper threads (MPI asynchronous progress, I/O) with placement and
 * behaviour hints:
 *
 *     uti_attr_t ua;
 *     uti_attr_init(&ua);
 *     UTI_ATTR_SAME_NUMA_DOMAIN(&ua);
 *     UTI_ATTR_CPU_INTENSIVE(&ua);
 *     rc = uti_pthread_create(&thr, NULL, progress, arg, &ua);
 *     uti_attr_destroy(&ua);
 *
 * Source compatible and link compatible with RIKEN's libuti: same names,
 * flag values, uti_attr_t layout (136 bytes) and function signatures.
 * Functions return 0 or an errno value (EINVAL for a NULL attribute,
 * contradictory hints such as SAME_NUMA_DOMAIN with DIFFERENT_NUMA_DOMAIN,
 * or hints that leave no CPU).
 *
 * Environment: DISABLE_UTI (non-zero: plain pthread_create), UTI_CPU_SET
 * (CPU list such as "0,2-5": only these CPUs), UTI_LOGLEVEL (0 errors,
 * 1 warnings, 2 debug; messages go to stderr), UTI_FWK_CPU_SET and
 * UTI_LWK_CPU_SET (the Linux/LWK CPU split, set by mcexec --enable-uti),
 * UTI_TOPOLOGY_XML / UTI_TOPOLOGY_SYNTHETIC (take the topology from an hwloc
 * XML file or synthetic description), UTI_COUNTER_FILE (node-wide usage
 * table; default /dev/shm/uti-<uid>.cpus).
 */

#ifndef _UTI_H_INCLUDED_
#define _UTI_H_INCLUDED_

#include <errno.h>
#include <string.h>
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* Logging */

enum uti_loglevel {
	UTI_LOGLEVEL_ERR = 0,
	UTI_LOGLEVEL_WARN,
	UTI_LOGLEVEL_DEBUG
};

/* Current level; initialized from UTI_LOGLEVEL when the library loads. */
extern enum uti_loglevel uti_loglevel;

static inline void uti_set_loglevel(enum uti_loglevel level)
{
	uti_loglevel = level;
}

/* Hint flags (bits of uti_attr_t.flags) */

#define UTI_FLAG_NUMA_SET              (1ULL << 1)
#define UTI_FLAG_SAME_NUMA_DOMAIN      (1ULL << 2)
#define UTI_FLAG_DIFFERENT_NUMA_DOMAIN (1ULL << 3)
#define UTI_FLAG_SAME_L1               (1ULL << 4)
#define UTI_FLAG_SAME_L2               (1ULL << 5)
#define UTI_FLAG_SAME_L3               (1ULL << 6)
#define UTI_FLAG_DIFFERENT_L1          (1ULL << 7)
#define UTI_FLAG_DIFFERENT_L2          (1ULL << 8)
#define UTI_FLAG_DIFFERENT_L3          (1ULL << 9)
#define UTI_FLAG_EXCLUSIVE_CPU         (1ULL << 10)
#define UTI_FLAG_CPU_INTENSIVE         (1ULL << 11)
#define UTI_FLAG_HIGH_PRIORITY         (1ULL << 12)
#define UTI_FLAG_NON_COOPERATIVE       (1ULL << 13)
#define UTI_FLAG_PREFER_LWK            (1ULL << 14)
#define UTI_FLAG_PREFER_FWK            (1ULL << 15)
#define UTI_FLAG_FABRIC_INTR_AFFINITY  (1ULL << 16)

/* Number of NUMA nodes a node mask can name (the Linux default maximum). */
#define UTI_MAX_NUMA_DOMAINS (1024)

typedef struct uti_attr {
	/* NUMA nodes for UTI_FLAG_NUMA_SET: bit n%64 of word n/64 is node n. */
	uint64_t numa_set[(UTI_MAX_NUMA_DOMAINS + sizeof(uint64_t) * 8 - 1) / (sizeof(uint64_t) * 8)];
	/* UTI_FLAG_* bits. */
	uint64_t flags;
} uti_attr_t;

/* Attribute objects */

int uti_attr_init(uti_attr_t *attr);
int uti_attr_destroy(uti_attr_t *attr);

/*
 * Restrict the thread to the NUMA nodes of nodemask, a bit mask of maxnode
 * bits (the convention of mbind(2)); nodes at or above UTI_MAX_NUMA_DOMAINS
 * cannot be named.
 */
static inline int UTI_ATTR_NUMA_SET(uti_attr_t *uti_attr, uint64_t *nodemask, size_t maxnode)
{
	size_t bit;

	if (!uti_attr || !nodemask)
		return EINVAL;
	for (bit = UTI_MAX_NUMA_DOMAINS; bit < maxnode; bit++)
		if ((nodemask[bit / 64] >> (bit % 64)) & 1)
			return EINVAL;
	memset(uti_attr->numa_set, 0, sizeof(uti_attr->numa_set));
	for (bit = 0; bit < maxnode && bit < UTI_MAX_NUMA_DOMAINS; bit++)
		if ((nodemask[bit / 64] >> (bit % 64)) & 1)
			uti_attr->numa_set[bit / 64] |= 1ULL << (bit % 64);
	uti_attr->flags |= UTI_FLAG_NUMA_SET;
	return 0;
}

#define UTI_DEFINE_ATTR_SETTER_(name, flag)                    \
	static inline int UTI_ATTR_##name(uti_attr_t *uti_attr) \
	{                                                       \
		if (!uti_attr)                                  \
			return EINVAL;                          \
		uti_attr->flags |= (flag);                      \
		return 0;                                       \
	}

/* Same NUMA domain as the calling thread / a different one. */
UTI_DEFINE_ATTR_SETTER_(SAME_NUMA_DOMAIN, UTI_FLAG_SAME_NUMA_DOMAIN)
UTI_DEFINE_ATTR_SETTER_(DIFFERENT_NUMA_DOMAIN, UTI_FLAG_DIFFERENT_NUMA_DOMAIN)
/* Share the caller's L1/L2/L3 cache. */
UTI_DEFINE_ATTR_SETTER_(SAME_L1, UTI_FLAG_SAME_L1)
UTI_DEFINE_ATTR_SETTER_(SAME_L2, UTI_FLAG_SAME_L2)
UTI_DEFINE_ATTR_SETTER_(SAME_L3, UTI_FLAG_SAME_L3)
/* Do not share the caller's L1/L2/L3 cache. */
UTI_DEFINE_ATTR_SETTER_(DIFFERENT_L1, UTI_FLAG_DIFFERENT_L1)
UTI_DEFINE_ATTR_SETTER_(DIFFERENT_L2, UTI_FLAG_DIFFERENT_L2)
UTI_DEFINE_ATTR_SETTER_(DIFFERENT_L3, UTI_FLAG_DIFFERENT_L3)
/* One CPU: the eligible CPU with the fewest utility threads on the node. */
UTI_DEFINE_ATTR_SETTER_(EXCLUSIVE_CPU, UTI_FLAG_EXCLUSIVE_CPU)
UTI_DEFINE_ATTR_SETTER_(CPU_INTENSIVE, UTI_FLAG_CPU_INTENSIVE)
/* SCHED_FIFO where permitted (CAP_SYS_NICE or RLIMIT_RTPRIO). */
UTI_DEFINE_ATTR_SETTER_(HIGH_PRIORITY, UTI_FLAG_HIGH_PRIORITY)
/* Does not yield cooperatively (accepted; no placement effect on Linux). */
UTI_DEFINE_ATTR_SETTER_(NON_COOPERATIVE, UTI_FLAG_NON_COOPERATIVE)
/* Prefer LWK CPUs / FWK (Linux) CPUs; falls back to the other kind. */
UTI_DEFINE_ATTR_SETTER_(PREFER_LWK, UTI_FLAG_PREFER_LWK)
UTI_DEFINE_ATTR_SETTER_(PREFER_FWK, UTI_FLAG_PREFER_FWK)
/* Near the fabric (OpenFabrics) adapter, where its interrupts arrive. */
UTI_DEFINE_ATTR_SETTER_(FABRIC_INTR_AFFINITY, UTI_FLAG_FABRIC_INTR_AFFINITY)

#undef UTI_DEFINE_ATTR_SETTER_

/*
 * pthread_create(3) with placement from uti_attr. attr may be NULL; if
 * given, it is used for the thread (its own affinity further restricts the
 * CPUs) and is left as it was on return.
 */
int uti_pthread_create(pthread_t *thread, pthread_attr_t *attr,
		       void *(*start_routine)(void *), void *arg,
		       uti_attr_t *uti_attr);

/*
 * Extension: from inside a thread created by uti_pthread_create, the CPU set
 * the library computed for it, as a mask of cpusetsize bytes (a cpu_set_t or
 * CPU_ALLOC set). It is the thread's affinity when the topology is this
 * machine's; with an XML or synthetic topology it is computed but not
 * applied. Returns 0, ENOENT (not a placed UTI thread, e.g. under
 * DISABLE_UTI) or EINVAL.
 */
int uti_self_cpuset(size_t cpusetsize, cpu_set_t *cpuset);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* _UTI_H_INCLUDED_ */
