/*
 * ihklib.h: the IHK C API (IHK specification §1.2.1-1.2.2) of the Rust
 * IHK/McKernel, implemented by libihk.so over ihkd's sockets (link with
 * -lihk). The ihkconfig/ihkosctl commands and this library share one
 * implementation (the ihk crate's client), so both behave the same.
 *
 * Every function returns 0 or a non-negative result on success and a
 * negative errno on failure, as the specification lists for it. Where the
 * daemon runs: $IHK_RUNTIME_DIR (default /run/ihk), whose mcd<N> and
 * mcos<N> sockets stand in for /dev/mcd<N> and /dev/mcos<N>. Functions the
 * specification reserves to privileged users need root (else -EPERM).
 *
 * Functions this design cannot support, documented below with the error
 * they return: CPU performance-counter events (ihk_os_setperfevent,
 * ihk_os_perfctl, ihk_os_getperfevent: -EINVAL), and the Linux-driver
 * control-register functions (ihk_os_read_cpu_register,
 * ihk_os_write_cpu_register, ihk_get_request_os_cpu: -EINVAL).
 */
#ifndef INCLUDED_IHKLIB
#define INCLUDED_IHKLIB

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- structures (§1.2.1.8, §1.2.2.6, §1.2.2.20, §1.2.2.28) ---- */

/* A memory request or report: size in bytes (a multiple of 4 MiB to
 * reserve; (unsigned long)-1 = as much as possible / everything) on a
 * NUMA node. */
typedef struct ihk_mem_chunk {
	unsigned long size;
	int numa_node_number;
} ihk_mem_chunk;

/* One entry of an IKC map: LWK CPU -> Linux CPU receiving its messages
 * (both given as Linux CPU numbers, as ihkosctl's map). */
struct ihk_ikc_cpu_map {
	int src_cpu;
	int dst_cpu;
};

enum ihklib_os_status {
	IHK_STATUS_INACTIVE,
	IHK_STATUS_BOOTING,
	IHK_STATUS_RUNNING,
	IHK_STATUS_SHUTDOWN,
	IHK_STATUS_PANIC,
	IHK_STATUS_HUNGUP,
	IHK_STATUS_FREEZING,
	IHK_STATUS_FROZEN,
};

/* ihk_os_get_eventfd types (§1.2.2.13). ihkd signals them when ihkmond
 * (§1.3.2.18; started by mcreboot -k/-i) reports the event: ihkmond must run
 * for them to fire. */
enum ihk_os_eventfd_type {
	/* kernel + user memory exceeded (assigned - 2 MiB) */
	IHK_OS_EVENTFD_TYPE_OOM = 0,
	/* the OS hung up or panicked (detected by ihkmond) */
	IHK_OS_EVENTFD_TYPE_STATUS = 2,
};

/* ihk_reserve_mem_conf keys (§1.2.1.6) and the type `value` points to. */
enum ihk_reserve_mem_conf_key {
	IHK_RESERVE_MEM_BALANCED_ENABLE,         /* int, default 0 */
	IHK_RESERVE_MEM_BALANCED_BEST_EFFORT,    /* int, default 0 */
	IHK_RESERVE_MEM_BALANCED_VARIANCE_LIMIT, /* int (%), default: no limit */
	IHK_RESERVE_MEM_MIN_CHUNK_SIZE,          /* unsigned long (bytes), default 4096 */
	IHK_RESERVE_MEM_MAX_SIZE_RATIO_ALL,      /* int (%), 1-98, default 98 */
	IHK_RESERVE_MEM_TIMEOUT,                 /* int (seconds), default 30 */
};
/* How the settings act where memory is reserved as huge-page or 4 KiB
 * memfd regions: MIN_CHUNK_SIZE is the smallest page accepted (2 MiB or
 * more refuses 4 KiB pages, more than 2 MiB refuses 2 MiB pages; -ENOMEM
 * when the node cannot give them); TIMEOUT is checked after each NUMA
 * node's reservation. The others act as specified. */

#define IHK_MAX_NUM_NUMA_NODES 1024
#define IHK_MAX_NUM_CPUS 1024

enum ihk_os_pgsize {
	IHK_OS_PGSIZE_4KB,
	IHK_OS_PGSIZE_64KB,
	IHK_OS_PGSIZE_2MB,
	IHK_OS_PGSIZE_32MB,
	IHK_OS_PGSIZE_1GB,
	IHK_OS_PGSIZE_16GB,
	IHK_OS_PGSIZE_512MB,
	IHK_OS_PGSIZE_4TB,
	IHK_MAX_NUM_PGSIZES
};

/* Statistics of an OS instance (§1.2.2.28). Here: user memory is counted
 * in memory_stat_rss[IHK_OS_PGSIZE_4KB] (the LWK does not break it down
 * by page size, nor file-backed: memory_stat_mapped_file is 0);
 * memory_numa_stat is indexed by Linux NUMA node and holds the memory in
 * use there; CPU times are sampled at the LWK's heartbeat tick (100 ms),
 * as Linux's tick-based accounting; cpuacct_usage_percpu is indexed by LWK
 * CPU number. */
struct ihk_os_rusage {
	unsigned long memory_stat_rss[IHK_MAX_NUM_PGSIZES];
	unsigned long memory_stat_mapped_file[IHK_MAX_NUM_PGSIZES];
	unsigned long memory_max_usage;
	unsigned long memory_kmem_usage;
	unsigned long memory_kmem_max_usage;
	unsigned long memory_numa_stat[IHK_MAX_NUM_NUMA_NODES];
	unsigned long cpuacct_stat_system; /* USER_HZ */
	unsigned long cpuacct_stat_user;   /* USER_HZ */
	unsigned long cpuacct_usage;       /* ns */
	unsigned long cpuacct_usage_percpu[IHK_MAX_NUM_CPUS]; /* ns */
	int num_threads;
	int max_num_threads;
};

/* CPU performance counters (§1.2.2.29-31): not supported, see below. */
enum ihk_perf_event {
	PERF_EVENT_ENABLE,
	PERF_EVENT_DISABLE,
	PERF_EVENT_DESTROY,
};

typedef struct ihk_perf_event_attr {
	unsigned long config;
	unsigned disabled:1;
	unsigned pinned:1;
	unsigned exclude_user:1;
	unsigned exclude_kernel:1;
	unsigned exclude_hv:1;
	unsigned exclude_idle:1;
} ihk_perf_event_attr;

/* Linux-driver functions (§1.2.5): not supported, see below. */
typedef void *ihk_os_t;
struct ihk_os_cpu_register {
	unsigned long addr;
	unsigned long addr_ext;
	unsigned long val;
	volatile int sync;
};

/* Size of the err_msg buffer ihk_create_os_str writes (with the NUL). */
#define IHKLIB_ERR_MSG_SIZE 1024

/* ---- resources of an IHK device (§1.2.1) ---- */

int ihk_reserve_cpu(int index, int *cpus, int num_cpus);
/* envp: num_env NUL-terminated "KEY=VAL" strings one after the other. */
int ihk_reserve_cpu_str(int dev_index, const char *envp, int num_env);
int ihk_get_num_reserved_cpus(int index);
int ihk_query_cpu(int index, int *cpus, int num_cpus);
int ihk_release_cpu(int index, int *cpus, int num_cpus);
int ihk_reserve_mem_conf(int index, int key, void *value);
int ihk_reserve_mem_conf_str(int dev_index, const char *envp, int num_env);
int ihk_reserve_mem(int index, struct ihk_mem_chunk *mem_chunks, int num_mem_chunks);
int ihk_reserve_mem_str(int dev_index, const char *envp, int num_env);
/* Reserved, unassigned memory is reported as one chunk per NUMA node. */
int ihk_get_num_reserved_mem_chunks(int index);
int ihk_query_mem(int index, struct ihk_mem_chunk *mem_chunks, int num_mem_chunks);
int ihk_release_mem(int index, struct ihk_mem_chunk *mem_chunks, int num_mem_chunks);
int ihk_create_os(int index);
int ihk_get_num_os_instances(int index);
int ihk_get_os_instances(int index, int *indices, int num_os_instances);
int ihk_destroy_os(int dev_index, int os_index);

/* ---- OS instances (§1.2.2) ---- */

int ihk_os_assign_cpu(int index, int *cpus, int num_cpus);
int ihk_os_assign_cpu_str(int os_index, const char *envp, int num_env);
int ihk_os_get_num_assigned_cpus(int index);
int ihk_os_query_cpu(int index, int *cpus, int num_cpus);
int ihk_os_release_cpu(int index, int *cpus, int num_cpus);
int ihk_os_set_ikc_map(int index, struct ihk_ikc_cpu_map *map, int num_cpus);
int ihk_os_set_ikc_map_str(int os_index, const char *envp, int num_env);
int ihk_os_get_ikc_map(int index, struct ihk_ikc_cpu_map *map, int num_cpus);
int ihk_os_assign_mem(int index, struct ihk_mem_chunk *mem_chunks, int num_mem_chunks);
int ihk_os_get_num_assigned_mem_chunks(int index);
int ihk_os_query_mem(int index, struct ihk_mem_chunk *mem_chunks, int num_mem_chunks);
int ihk_os_release_mem(int index, struct ihk_mem_chunk *mem_chunks, int num_mem_chunks);
/* The caller owns the returned descriptor (close it when done). */
int ihk_os_get_eventfd(int index, int type);
int ihk_os_load(int index, char *image);
int ihk_os_kargs(int index, char *kargs);
int ihk_os_kargs_str(int os_index, const char *envp, int num_env, const char *default_kargs);
/* Deprecated by the specification. err_msg: IHKLIB_ERR_MSG_SIZE bytes. */
int ihk_create_os_str(int dev_index, int *os_index, const char *envp, int num_env,
		      const char *kernel_image, const char *default_kargs, char *err_msg);
/* Returns once the LWK runs ($IHK_BOOT_TIMEOUT seconds at most, default 30). */
int ihk_os_boot(int index);
int ihk_os_shutdown(int index);
int ihk_os_get_status(int index);
ssize_t ihk_os_get_kmsg_size(int index);
/* size_kmsg must equal ihk_os_get_kmsg_size(); the text is NUL-terminated
 * when it leaves room. */
int ihk_os_kmsg(int index, char *kmsg, size_t size_kmsg);
int ihk_os_clear_kmsg(int index);
int ihk_os_get_num_numa_nodes(int index);
int ihk_os_query_free_mem(int index, unsigned long *memfree, int num_numa_nodes);
int ihk_os_get_num_pagesizes(int index);
int ihk_os_get_pagesizes(int index, long *pgsizes, int num_pgsizes);
int ihk_os_get_rusage(int index, struct ihk_os_rusage *rusage);
/* IHK's name for the same, with the size of the caller's structure. */
int ihk_os_getrusage(int index, struct ihk_os_rusage *rusage, size_t size_rusage);

/* Not supported: the LWK runs in a KVM guest whose PMU is not handed
 * through; each returns -ENOENT for a missing instance, else -EINVAL. */
int ihk_os_setperfevent(int index, struct ihk_perf_event_attr attr[], int n);
int ihk_os_perfctl(int index, int comm);
int ihk_os_getperfevent(int index, unsigned long *counter, int n);

/* os_set: a bit string of n bits, bit i (from the LSB of os_set[0]) selects
 * OS instance i. Freezing returns at once: watch ihk_os_get_status go
 * FREEZING -> FROZEN. */
int ihk_os_freeze(unsigned long *os_set, int n);
int ihk_os_thaw(unsigned long *os_set, int n);

/* An ELF core of the instance (gdb <mckernel.img> <dump_file> opens it):
 * dump_level 0 = all assigned memory, 24 = memory the kernel uses (free
 * pages left out); interactive = 1 writes the headers and registers only.
 * The file is created with the caller's rights and must not exist. */
int ihk_os_makedumpfile(int index, char *dump_file, int dump_level, int interactive);

/* Not supported (they are kernel-module interfaces; this design has no
 * kernel module): -EINVAL. */
int ihk_os_read_cpu_register(ihk_os_t os, int cpu, struct ihk_os_cpu_register *desc);
int ihk_os_write_cpu_register(ihk_os_t os, int cpu, struct ihk_os_cpu_register *desc);
int ihk_get_request_os_cpu(ihk_os_t *os, int *cpu);

/* Extension: the detail sentence of this thread's last failed call
 * ("" if none), e.g. "CPU 7 does not exist; this node's CPUs are 0-1". */
const char *ihklib_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* INCLUDED_IHKLIB */
