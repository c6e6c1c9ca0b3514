/*
 * GUPS-style random access (HPCC RandomAccess, single process): XOR updates
 * at pseudo-random positions of a table of 2^<log2> 64-bit words, timed in
 * <rounds> rounds of <updates> updates.  The address stream is HPCC's
 * (x <- x<<1 ^ (x<0 ? POLY : 0)), so runs are deterministic and the final
 * checksum must be the same on every system.
 *
 * usage: gups <log2-table-words> <updates> <rounds> <default|nohuge|huge>
 *   default  the table is plain anonymous memory (what the system does)
 *   nohuge   madvise(MADV_NOHUGEPAGE) on the table before it is touched
 *   huge     madvise(MADV_HUGEPAGE) on the table before it is touched
 * The table is 2 MiB aligned.  madvise failure is reported ("madvise_errno")
 * and the run continues: an LWK may not implement it.
 * stdout: table_bytes, madvise_errno, "round <i> <seconds>" per round,
 * thp_kb (AnonHugePages of the table from /proc/self/smaps, -1 when
 * unavailable) and checksum.
 */
#include "bench_common.h"
#include <sys/mman.h>

static const char *prog = "gups";

#define POLY 0x0000000000000007ULL
#define HUGE_2M (2ULL << 20)

static inline uint64_t next_ran(uint64_t x)
{
	return (x << 1) ^ (((int64_t)x < 0) ? POLY : 0);
}

/* AnonHugePages (kB) of the mapping that starts at addr, or -1. */
static long thp_kb_of(uintptr_t addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	char line[512];
	int in_map = 0;
	long kb = -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in_map = (lo <= addr && addr < hi);
			continue;
		}
		if (in_map && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s <log2-table-words> <updates> <rounds> <default|nohuge|huge>\n",
			prog);
		return 2;
	}
	uint64_t log2 = parse_count(prog, "log2-table-words", argv[1]);
	uint64_t updates = parse_count(prog, "updates", argv[2]);
	uint64_t rounds = parse_count(prog, "rounds", argv[3]);
	const char *mode = argv[4];
	if (log2 < 10 || log2 > 36) {
		fprintf(stderr, "%s: log2-table-words must be in 10..36, got %llu\n", prog,
			(unsigned long long)log2);
		return 2;
	}
	int advice;
	if (strcmp(mode, "default") == 0)
		advice = -1;
	else if (strcmp(mode, "nohuge") == 0)
		advice = MADV_NOHUGEPAGE;
	else if (strcmp(mode, "huge") == 0)
		advice = MADV_HUGEPAGE;
	else {
		fprintf(stderr, "%s: mode must be default, nohuge or huge, got '%s'\n", prog, mode);
		return 2;
	}

	uint64_t words = 1ULL << log2, mask = words - 1;
	size_t bytes = words * sizeof(uint64_t);
	size_t span = bytes + HUGE_2M;
	char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) {
		fprintf(stderr, "%s: cannot map %zu bytes: %s\n", prog, span, strerror(errno));
		return 2;
	}
	uint64_t *table = (uint64_t *)(((uintptr_t)raw + HUGE_2M - 1) & ~(HUGE_2M - 1));
	int madv_errno = 0;
	if (advice >= 0 && madvise(table, bytes, advice) != 0)
		madv_errno = errno;

	for (uint64_t i = 0; i < words; i++)
		table[i] = i;
	printf("table_bytes %zu\nmadvise_errno %d\n", bytes, madv_errno);

	uint64_t ran = 1;
	for (uint64_t r = 0; r < rounds; r++) {
		double t0 = now_sec();
		for (uint64_t i = 0; i < updates; i++) {
			ran = next_ran(ran);
			table[ran & mask] ^= ran;
		}
		double t1 = now_sec();
		printf("round %llu %.6f\n", (unsigned long long)r, t1 - t0);
		fflush(stdout);
	}

	uint64_t sum = 0;
	for (uint64_t i = 0; i < words; i++)
		sum += table[i] * (i | 1);
	printf("thp_kb %ld\nchecksum %016llx\n", thp_kb_of((uintptr_t)table),
	       (unsigned long long)sum);
	return 0;
}
