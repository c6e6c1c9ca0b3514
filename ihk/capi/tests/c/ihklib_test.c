/*
 * A job scheduler's use of libihk, compiled against the installed ihklib.h
 * and libihk.so: the whole mcreboot sequence through the C API, boot,
 * RUNNING, freeze and thaw, rusage, a memory dump, shutdown and release,
 * then the same with the *_str functions; every documented error it
 * triggers must come back with the documented code.
 *
 *   ihklib_test <kernel image> <Linux CPU for the LWK> <dump directory>
 *
 * ihkd must serve $IHK_RUNTIME_DIR (the harness, tests/c_api.rs, starts it).
 * Exit status 0 when every check passed; the first failure is printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ihklib.h>

static int checks;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		checks++;                                                  \
		if (!(cond)) {                                             \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__,      \
				__LINE__, #cond);                          \
			fprintf(stderr, __VA_ARGS__);                      \
			fprintf(stderr, " (last error: %s)\n",             \
				ihklib_last_error());                      \
			exit(1);                                           \
		}                                                          \
	} while (0)

/* A call that must succeed (>= 0). */
#define OK(call)                                                           \
	({                                                                 \
		int r_ = (call);                                           \
		CHECK(r_ >= 0, "%s returned %d", #call, r_);               \
		r_;                                                        \
	})

/* A call that must fail with -err. */
#define FAILS(call, err)                                                   \
	do {                                                               \
		int r_ = (call);                                           \
		CHECK(r_ == -(err), "%s returned %d, expected -%s", #call, \
		      r_, #err);                                           \
	} while (0)

static const char *status_name(int s)
{
	static const char *names[] = { "INACTIVE", "BOOTING",  "RUNNING",
				       "SHUTDOWN", "PANIC",    "HUNGUP",
				       "FREEZING", "FROZEN" };
	return s >= 0 && s < 8 ? names[s] : "?";
}

/* Wait up to `ms` for OS 0 to reach `want`; returns the last status. */
static int wait_status(int want, int ms)
{
	int s = -1;
	for (int i = 0; i < ms / 10; i++) {
		s = ihk_os_get_status(0);
		if (s == want)
			break;
		usleep(10000);
	}
	return s;
}

static void reserve_and_configure(const char *image, int cpu)
{
	int cpus[1] = { cpu };
	struct ihk_mem_chunk mem = { 128UL << 20, 0 };
	struct ihk_ikc_cpu_map map = { cpu, cpu == 0 ? 1 : 0 };

	/* Reservation (ihkconfig 0 reserve ...), with its errors. */
	int bad_cpu[1] = { 4096 };
	FAILS(ihk_reserve_cpu(0, bad_cpu, 1), EINVAL);
	FAILS(ihk_reserve_cpu(7, cpus, 1), ENOENT);
	FAILS(ihk_reserve_cpu(-1, cpus, 1), EINVAL);
	struct ihk_mem_chunk odd = { (128UL << 20) + 4096, 0 };
	FAILS(ihk_reserve_mem(0, &odd, 1), EINVAL);
	struct ihk_mem_chunk bad_node = { 128UL << 20, 63 };
	FAILS(ihk_reserve_mem(0, &bad_node, 1), EINVAL);
	int bad_ratio = 99;
	FAILS(ihk_reserve_mem_conf(0, IHK_RESERVE_MEM_MAX_SIZE_RATIO_ALL, &bad_ratio), EINVAL);
	FAILS(ihk_reserve_mem_conf(0, 42, &bad_ratio), EINVAL);
	int timeout = 60;
	OK(ihk_reserve_mem_conf(0, IHK_RESERVE_MEM_TIMEOUT, &timeout));

	OK(ihk_reserve_mem(0, &mem, 1));
	OK(ihk_reserve_cpu(0, cpus, 1));
	CHECK(ihk_get_num_reserved_cpus(0) == 1, "one CPU reserved");
	int got[4] = { -1, -1, -1, -1 };
	OK(ihk_query_cpu(0, got, 4));
	CHECK(got[0] == cpu, "query_cpu gives %d", got[0]);
	CHECK(ihk_get_num_reserved_mem_chunks(0) == 1, "one chunk reserved");
	struct ihk_mem_chunk q = { 0, -1 };
	OK(ihk_query_mem(0, &q, 1));
	CHECK(q.size == (128UL << 20) && q.numa_node_number == 0,
	      "query_mem gives %lu@%d", q.size, q.numa_node_number);

	/* The instance (ihkconfig 0 create, ihkosctl 0 assign/set/load/kargs). */
	CHECK(ihk_create_os(0) == 0, "the first instance is 0");
	CHECK(ihk_get_num_os_instances(0) == 1, "one instance");
	int idx[2];
	FAILS(ihk_get_os_instances(0, idx, 2), EINVAL);
	OK(ihk_get_os_instances(0, idx, 1));
	CHECK(idx[0] == 0, "instance 0 listed");
	FAILS(ihk_destroy_os(0, 5), ENOENT);
	FAILS(ihk_os_get_status(7), ENOENT);
	CHECK(ihk_os_get_status(0) == IHK_STATUS_INACTIVE, "new instance INACTIVE");

	FAILS(ihk_os_boot(0), EINVAL); /* nothing assigned yet */
	OK(ihk_os_assign_cpu(0, cpus, 1));
	CHECK(ihk_os_get_num_assigned_cpus(0) == 1, "one CPU assigned");
	OK(ihk_os_set_ikc_map(0, &map, 1));
	struct ihk_ikc_cpu_map m2 = { -1, -1 };
	OK(ihk_os_get_ikc_map(0, &m2, 1));
	CHECK(m2.src_cpu == map.src_cpu && m2.dst_cpu == map.dst_cpu,
	      "IKC map %d:%d", m2.src_cpu, m2.dst_cpu);
	OK(ihk_os_assign_mem(0, &mem, 1));
	CHECK(ihk_os_get_num_assigned_mem_chunks(0) == 1, "one chunk assigned");
	CHECK(ihk_get_num_reserved_mem_chunks(0) == 0, "all reserved memory assigned");
	FAILS(ihk_os_load(0, "/nonexistent/mckernel.img"), EINVAL);
	OK(ihk_os_load(0, (char *)image));
	FAILS(ihk_os_kargs(0, "dump_level=24"), EINVAL); /* no hidos */
	FAILS(ihk_os_kargs(0, NULL), EFAULT);
	OK(ihk_os_kargs(0, "hidos dump_level=24"));
	FAILS(ihk_os_shutdown(0), EINVAL); /* not booted */
	unsigned long set = 1;
	FAILS(ihk_os_freeze(&set, 1), EINVAL); /* not running */
	int ev_bad = ihk_os_get_eventfd(0, 1);
	CHECK(ev_bad == -EINVAL, "eventfd type 1 -> %d", ev_bad);
}

static void running(const char *dumps, int cpu)
{
	CHECK(ihk_os_get_status(0) == IHK_STATUS_RUNNING, "status %s",
	      status_name(ihk_os_get_status(0)));
	int cpus[1] = { cpu };
	FAILS(ihk_os_assign_cpu(0, cpus, 1), EBUSY);

	/* Kernel messages. */
	ssize_t size = ihk_os_get_kmsg_size(0);
	CHECK(size > 0, "kmsg size %zd", size);
	char *buf = calloc(1, size);
	FAILS(ihk_os_kmsg(0, buf, size - 1), EINVAL);
	int n = OK(ihk_os_kmsg(0, buf, size));
	CHECK(n > 0 && strstr(buf, "IHK/McKernel booted.") != NULL, "kmsg has the booted line");

	/* Resources as the LWK sees them. */
	CHECK(ihk_os_get_num_numa_nodes(0) == 1, "one NUMA node");
	unsigned long free_mem[1] = { 0 };
	OK(ihk_os_query_free_mem(0, free_mem, 1));
	CHECK(free_mem[0] > 0 && free_mem[0] < (128UL << 20), "free memory %lu", free_mem[0]);
	int np = ihk_os_get_num_pagesizes(0);
	CHECK(np >= 2, "%d page sizes", np);
	long pgsizes[8];
	OK(ihk_os_get_pagesizes(0, pgsizes, np));
	CHECK(pgsizes[0] == 4096 && pgsizes[1] == (2L << 20), "page sizes %ld %ld", pgsizes[0], pgsizes[1]);

	/* The monitoring eventfd a scheduler would epoll. */
	int ev = OK(ihk_os_get_eventfd(0, IHK_OS_EVENTFD_TYPE_STATUS));
	CHECK(fcntl(ev, F_GETFD) >= 0, "the eventfd is ours");

	/* Freeze: FREEZING, then FROZEN; again is EBUSY; thaw: RUNNING. */
	unsigned long set = 1;
	FAILS(ihk_os_thaw(&set, 1), EINVAL);
	unsigned long missing = 1UL << 5;
	FAILS(ihk_os_freeze(&missing, 6), ENOENT);
	OK(ihk_os_freeze(&set, 1));
	int s = wait_status(IHK_STATUS_FROZEN, 5000);
	CHECK(s == IHK_STATUS_FROZEN, "after freeze: %s", status_name(s));
	FAILS(ihk_os_freeze(&set, 1), EBUSY);
	OK(ihk_os_thaw(&set, 1));
	CHECK(ihk_os_get_status(0) == IHK_STATUS_RUNNING, "thawed");

	/* Statistics. */
	usleep(300000); /* a few heartbeat ticks */
	struct ihk_os_rusage *ru = calloc(1, sizeof(*ru));
	OK(ihk_os_get_rusage(0, ru));
	CHECK(ru->memory_kmem_usage > 0, "kernel memory %lu", ru->memory_kmem_usage);
	CHECK(ru->memory_numa_stat[0] > 0, "NUMA 0 in use %lu", ru->memory_numa_stat[0]);
	CHECK(ru->num_threads >= 0 && ru->max_num_threads >= ru->num_threads, "threads");
	FAILS(ihk_os_getrusage(0, ru, 16), EINVAL);
	OK(ihk_os_getrusage(0, ru, sizeof(*ru)));
	FAILS(ihk_os_get_rusage(0, NULL), EINVAL);
	free(ru);

	/* Not supported here: the documented error. */
	ihk_perf_event_attr attr = { 0 };
	FAILS(ihk_os_setperfevent(0, &attr, 1), EINVAL);
	FAILS(ihk_os_perfctl(0, PERF_EVENT_ENABLE), EINVAL);
	FAILS(ihk_os_setperfevent(9, &attr, 1), ENOENT);
	struct ihk_os_cpu_register reg = { 0 };
	FAILS(ihk_os_read_cpu_register(NULL, 0, &reg), EINVAL);

	/* Dumps. */
	char path[4096];
	snprintf(path, sizeof(path), "%s/mcdump.24", dumps);
	OK(ihk_os_makedumpfile(0, path, 24, 0));
	struct stat st;
	CHECK(stat(path, &st) == 0 && st.st_size > 4096, "dump written");
	FAILS(ihk_os_makedumpfile(0, path, 24, 0), EEXIST);
	snprintf(path, sizeof(path), "%s/mcdump.0", dumps);
	OK(ihk_os_makedumpfile(0, path, 0, 0));
	snprintf(path, sizeof(path), "%s/no/such/dir/mcdump", dumps);
	FAILS(ihk_os_makedumpfile(0, path, 0, 0), ENOENT);
	FAILS(ihk_os_makedumpfile(0, NULL, 0, 0), ENOENT);
	FAILS(ihk_os_makedumpfile(0, "", 0, 0), ENOENT);
	snprintf(path, sizeof(path), "%s/mcdump.bad", dumps);
	FAILS(ihk_os_makedumpfile(0, path, 3, 0), EINVAL);
	FAILS(ihk_os_makedumpfile(-1, path, 0, 0), EINVAL);
	FAILS(ihk_os_makedumpfile(9, path, 0, 0), ENODEV);
	CHECK(access(path, F_OK) != 0, "no file left by a failed dump");

	/* An unprivileged caller may look but not act. */
	pid_t pid = fork();
	if (pid == 0) {
		if (setuid(65534) != 0)
			_exit(2);
		int cpus2[1] = { cpu };
		_exit(ihk_reserve_cpu(0, cpus2, 1) == -EPERM &&
			      ihk_os_freeze(&set, 1) == -EPERM ?
			      0 :
			      1);
	}
	int wst;
	waitpid(pid, &wst, 0);
	CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "unprivileged calls are EPERM (%d)", wst);

	close(ev);
	free(buf);
}

static void shutdown_and_release(int cpu)
{
	OK(ihk_os_shutdown(0));
	int s = wait_status(IHK_STATUS_INACTIVE, 10000);
	CHECK(s == IHK_STATUS_INACTIVE, "after shutdown: %s", status_name(s));
	OK(ihk_destroy_os(0, 0));
	FAILS(ihk_os_get_status(0), ENOENT);
	int cpus[1] = { cpu };
	OK(ihk_release_cpu(0, cpus, 1));
	struct ihk_mem_chunk all = { (unsigned long)-1, 0 };
	OK(ihk_release_mem(0, &all, 1));
	CHECK(ihk_get_num_reserved_cpus(0) == 0, "no CPU reserved");
	CHECK(ihk_get_num_reserved_mem_chunks(0) == 0, "no memory reserved");
}

/* num NUL-terminated strings one after the other. */
static int env(char *out, size_t cap, const char **items, int num)
{
	size_t off = 0;
	for (int i = 0; i < num; i++) {
		size_t len = strlen(items[i]) + 1;
		if (off + len > cap)
			return -1;
		memcpy(out + off, items[i], len);
		off += len;
	}
	return num;
}

static void with_str_functions(const char *image, int cpu)
{
	char e[1024], cpus_kv[64], map_kv[64];
	snprintf(cpus_kv, sizeof(cpus_kv), "IHK_CPUS=%d", cpu);
	snprintf(map_kv, sizeof(map_kv), "IHK_IKC_MAP=%d:%d", cpu, cpu == 0 ? 1 : 0);

	const char *nocpus[] = { "IHK_MEM=128M@0" };
	int n = env(e, sizeof(e), nocpus, 1);
	FAILS(ihk_reserve_cpu_str(0, e, n), EINVAL);
	FAILS(ihk_reserve_cpu_str(0, NULL, 1), EFAULT);
	const char *c1[] = { cpus_kv, "UNRELATED=ignored" };
	n = env(e, sizeof(e), c1, 2);
	OK(ihk_reserve_cpu_str(0, e, n));
	const char *conf[] = { "IHK_RESERVE_MEM_BALANCED_ENABLE=1", "IHK_RESERVE_MEM_MEM_TIMEOUT=30" };
	n = env(e, sizeof(e), conf, 2);
	OK(ihk_reserve_mem_conf_str(0, e, n));
	const char *badconf[] = { "IHK_RESERVE_MEM_MAX_SIZE_RATIO_ALL=0" };
	n = env(e, sizeof(e), badconf, 1);
	FAILS(ihk_reserve_mem_conf_str(0, e, n), EINVAL);
	const char *m1[] = { "IHK_MEM=128M@0" };
	n = env(e, sizeof(e), m1, 1);
	OK(ihk_reserve_mem_str(0, e, n));
	CHECK(ihk_create_os(0) == 0, "instance 0");
	n = env(e, sizeof(e), c1, 1);
	OK(ihk_os_assign_cpu_str(0, e, n));
	const char *m2[] = { map_kv };
	n = env(e, sizeof(e), m2, 1);
	OK(ihk_os_set_ikc_map_str(0, e, n));
	struct ihk_mem_chunk all = { (unsigned long)-1, 0 };
	OK(ihk_os_assign_mem(0, &all, 1));
	OK(ihk_os_load(0, (char *)image));
	FAILS(ihk_os_kargs_str(0, NULL, 0, NULL), EFAULT);
	const char *k1[] = { "IHK_KARGS=hidos" };
	n = env(e, sizeof(e), k1, 1);
	OK(ihk_os_kargs_str(0, e, n, "not used"));
	OK(ihk_os_boot(0));
	CHECK(ihk_os_get_status(0) == IHK_STATUS_RUNNING, "booted with *_str");
	shutdown_and_release(cpu);

	/* The deprecated all-in-one: a missing IHK_CPUS is EINVAL, with a
	 * message, and leaves nothing behind... */
	char err[IHKLIB_ERR_MSG_SIZE] = "";
	int os = -1;
	const char *noc[] = { "IHK_MEM=128M@0" };
	n = env(e, sizeof(e), noc, 1);
	FAILS(ihk_create_os_str(0, &os, e, n, image, "hidos", err), EINVAL);
	CHECK(strstr(err, "IHK_CPUS") != NULL, "err_msg names the problem: %s", err);
	CHECK(ihk_get_num_os_instances(0) == 0, "no instance left");
	/* ...and a complete list gives a loaded, configured instance. */
	const char *all_kv[] = { cpus_kv, "IHK_MEM=128M@0", map_kv, "IHK_KARGS=hidos dump_level=24" };
	n = env(e, sizeof(e), all_kv, 4);
	OK(ihk_create_os_str(0, &os, e, n, image, "hidos", err));
	CHECK(os == 0, "created instance %d", os);
	OK(ihk_os_boot(0));
	CHECK(ihk_os_get_status(0) == IHK_STATUS_RUNNING, "booted with ihk_create_os_str");
	shutdown_and_release(cpu);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s <kernel image> <Linux CPU> <dump directory>\n", argv[0]);
		return 2;
	}
	const char *image = argv[1];
	int cpu = atoi(argv[2]);

	reserve_and_configure(image, cpu);
	OK(ihk_os_boot(0));
	running(argv[3], cpu);
	shutdown_and_release(cpu);
	with_str_functions(image, cpu);
	printf("ihklib_test: %d checks passed\n", checks);
	return 0;
}
