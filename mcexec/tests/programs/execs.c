/* execve details, printed so that the LWK's run can be compared with
 * Linux's: `#!` scripts (interpreter argument, nesting up to Linux's limit
 * and ELOOP past it, a missing interpreter, a file that is neither ELF nor
 * script), execveat (dirfd-relative, AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, a
 * close-on-exec script descriptor, bad flags), /proc/self/exe after an
 * execve, and listings of /sys/devices/system/cpu and /proc/self/task.
 *
 * Usage: execs <scratch dir> <shell>   (the shell runs the scripts) */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *dir, *shell;
extern char **environ;

static void put(const char *name, const char *text) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f) { perror(p); exit(2); }
    fputs(text, f);
    fclose(f);
    chmod(p, 0755);
}

/* Run `fn` in a child; print its output's status or the errno it got. */
static void child(const char *what, void (*fn)(void)) {
    fflush(stdout);
    int pipefd[2];
    if (pipe(pipefd)) { perror("pipe"); exit(2); }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        fn();
        /* Only reached when the exec failed. */
        printf("errno %s\n", strerrorname_np(errno));
        fflush(stdout);
        _exit(99);
    }
    close(pipefd[1]);
    char buf[4096];
    ssize_t n, len = 0;
    while ((n = read(pipefd[0], buf + len, sizeof buf - 1 - len)) > 0) len += n;
    buf[len] = 0;
    close(pipefd[0]);
    int st;
    waitpid(pid, &st, 0);
    /* The scratch directory's name is not part of the answer. */
    char out[8192] = "", *s = buf;
    size_t dl = strlen(dir);
    while (*s) {
        char *m = strstr(s, dir);
        if (!m) { strcat(out, s); break; }
        strncat(out, s, m - s);
        strcat(out, "DIR");
        s = m + dl;
    }
    printf("%s: status %d: %s", what, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), out);
    if (len == 0 || buf[len - 1] != '\n') printf("\n");
}

static char path[4096];
static char *const args[] = {"argv0", "one", "two words", NULL};

static void run_path(void) { execve(path, args, environ); }

static void run_no_args(void) {
    char *const none[] = {NULL};
    execve(path, none, environ);
}

static int dirfd_;
static int flags_;
static const char *rel_;
static char *const *at_args = args;
static void run_at(void) { syscall(SYS_execveat, dirfd_, rel_, at_args, environ, flags_); }

static void exe_after_exec(void) {
    char *const a[] = {"readlink", "/proc/self/exe", NULL};
    execve("/bin/busybox", a, environ);
}

static void exec_proc_self_exe(void) {
    /* Runs this program again: it prints its argv. */
    char *const a[] = {"again", "--print-args", "x", NULL};
    execve("/proc/self/exe", a, environ);
}

static int count_entries(const char *d, const char *prefix) {
    DIR *dp = opendir(d);
    if (!dp) return -errno;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        const char *s = e->d_name;
        if (strncmp(s, prefix, strlen(prefix)) != 0) continue;
        s += strlen(prefix);
        if (*s && strspn(s, "0123456789") == strlen(s)) n++;
    }
    closedir(dp);
    return n;
}

static int has_entry(const char *d, const char *name) {
    DIR *dp = opendir(d);
    if (!dp) return 0;
    struct dirent *e;
    int found = 0;
    while ((e = readdir(dp))) found |= strcmp(e->d_name, name) == 0;
    closedir(dp);
    return found;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--print-args") == 0) {
        for (int i = 0; i < argc; i++) printf("[%s]", argv[i]);
        printf("\n");
        return 0;
    }
    if (argc != 3) { fprintf(stderr, "usage: execs <dir> <shell>\n"); return 2; }
    dir = argv[1];
    shell = argv[2];
    char text[8192];
    /* A script printing its arguments, through the shell. */
    snprintf(text, sizeof text, "#!%s\necho \"[$0]\" \"[$*]\" \"$#\"\n", shell);
    put("s0", text);
    /* One interpreter argument, blanks kept inside it: env -S is not used,
     * so the shell gets it as one word and reads it as its script name. */
    snprintf(text, sizeof text, "#!%s -e\necho \"arg-e [$0] [$*]\"\n", shell);
    put("witharg", text);
    for (int i = 1; i <= 6; i++) {
        char name[16];
        snprintf(text, sizeof text, "#!%s/s%d\n", dir, i - 1);
        snprintf(name, sizeof name, "s%d", i);
        put(name, text);
    }
    snprintf(text, sizeof text, "#!%s/nonexistent-interp\n", dir);
    put("missing", text);
    put("plain", "just text, no #! line\n");
    put("empty-shebang", "#!\n");
    put("empty", "");

    const char *cases[] = {"s0", "witharg", "s1", "s4", "s5", "s6", "missing", "plain", "empty-shebang", "empty"};
    for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, cases[i]);
        child(cases[i], run_path);
    }
    snprintf(path, sizeof path, "%s/s0", dir);
    child("s0 without argv", run_no_args);

    /* execveat relative to a directory descriptor: the script's name is
     * /dev/fd/N/s0 (the number is the same on both sides). */
    dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
    rel_ = "s0";
    flags_ = 0;
    child("execveat dirfd s0", run_at);
    /* The file of a descriptor (fexecve). */
    dirfd_ = open("/bin/busybox", O_RDONLY);
    rel_ = "";
    flags_ = AT_EMPTY_PATH;
    static char *const echo_args[] = {"echo", "fexecve", "of", "busybox", NULL};
    at_args = echo_args;
    child("execveat empty path busybox", run_at);
    at_args = args;
    /* A script by a close-on-exec descriptor: its interpreter could not
     * open it by name, so Linux says ENOENT. */
    snprintf(path, sizeof path, "%s/s0", dir);
    dirfd_ = open(path, O_RDONLY | O_CLOEXEC);
    child("execveat cloexec script", run_at);
    dirfd_ = open(path, O_RDONLY);
    child("execveat script fd", run_at);
    /* A symbolic link with AT_SYMLINK_NOFOLLOW: ELOOP. */
    char link[4096];
    snprintf(link, sizeof link, "%s/link", dir);
    symlink(path, link);
    dirfd_ = AT_FDCWD;
    rel_ = link;
    flags_ = AT_SYMLINK_NOFOLLOW;
    child("execveat nofollow link", run_at);
    flags_ = 0;
    child("execveat link", run_at);
    flags_ = 0x4;
    child("execveat bad flags", run_at);
    rel_ = "";
    flags_ = 0;
    child("execveat empty path without flag", run_at);

    child("/proc/self/exe after execve", exe_after_exec);
    child("execve /proc/self/exe", exec_proc_self_exe);

    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int cpus = count_entries("/sys/devices/system/cpu", "cpu");
    printf("cpuN entries match the online CPUs: %s\n", cpus == online ? "yes" : "no");
    printf("cpu0 listed: %s\n", has_entry("/sys/devices/system/cpu", "cpu0") ? "yes" : "no");
    printf("/proc/self/task entries: %d\n", count_entries("/proc/self/task", ""));
    printf("done\n");
    return 0;
}
