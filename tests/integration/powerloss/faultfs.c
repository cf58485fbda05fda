/* faultfs: an LD_PRELOAD shim that records what a process made durable, so a test can cut
 * the power: throw away everything that was written but not synced.
 *
 * Theory of operation. The shim watches one directory tree (PAXOSD_POWERLOSS_DIR) and keeps,
 * in another (PAXOSD_POWERLOSS_SHADOW), what a strict disk would still hold after a power
 * failure:
 *
 *   - a file's DATA is durable as of its last fsync or fdatasync (on any descriptor): then the
 *     shim copies the whole file to the shadow, under the file's identity (inode number and
 *     birth time, so a reused inode number is another file);
 *   - a directory's ENTRIES (files created, renamed, removed) are durable as of its last
 *     fsync: then the shim writes the directory's listing (name -> file identity, or
 *     subdirectory) to the shadow;
 *   - sync() and syncfs() make the whole tree durable.
 *
 * Nothing else is: a write(2) reaches only the page cache, a rename only the directory in
 * memory. The shim intercepts the sync calls alone (it passes them on first, and records only
 * once they succeeded), so it costs nothing on the write path. When the process starts and
 * the shadow is empty, everything already in the tree is taken as durable (the baseline).
 *
 * After the test kills the process (kill -9: the page cache survives, so nothing is lost yet),
 * tests/integration/powerloss/__init__.py rebuilds the tree from the shadow alone: the state
 * a power cut would have left. A file whose name is durable but whose data never was comes
 * back empty.
 *
 * Every shadow file is written under a temporary name and renamed into place, so a process
 * killed in the middle of recording leaves the previous record whole. Limits: directories are
 * identified by their path in the tree (renaming a directory is not modelled); O_SYNC and
 * O_DSYNC writes and msync are not modelled (nothing under a paxosd store uses them).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static char root[PATH_MAX];
static size_t root_len;
static char shadow[PATH_MAX];
static int enabled;

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static void (*real_sync)(void);
static int (*real_syncfs)(int);

static void fail(const char *what, const char *path) {
    /* The record is the test's evidence: never go on with a partial one. */
    fprintf(stderr, "faultfs: %s %s: %s\n", what, path, strerror(errno));
    _exit(99);
}

/* snprintf that refuses to truncate (a truncated path would record the wrong file). */
__attribute__((format(printf, 3, 4))) static void format(char *out, size_t size,
                                                          const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(out, size, fmt, args);
    va_end(args);
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        fail("path too long:", fmt);
    }
}

/* The identity of a file: inode number and birth time (when the filesystem has one). */
static void identity(int dirfd, const char *path, int flags, char *out, size_t size) {
    struct statx stx;
    if (statx(dirfd, path, flags, STATX_INO | STATX_BTIME, &stx) != 0) fail("statx", path);
    if (stx.stx_mask & STATX_BTIME)
        format(out, size, "%llu-%lld.%09u", (unsigned long long)stx.stx_ino,
                 (long long)stx.stx_btime.tv_sec, stx.stx_btime.tv_nsec);
    else
        format(out, size, "%llu", (unsigned long long)stx.stx_ino);
}

/* The path of a descriptor's file, if it lies in the watched tree: its part below the root
 * ("." for the root itself) goes to `rel`. */
static int watched(int fd, char *path, char *rel) {
    char link[64];
    format(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, PATH_MAX - 1);
    if (n < 0) return 0;
    path[n] = '\0';
    if (strncmp(path, root, root_len) != 0) return 0;
    if (path[root_len] == '\0') {
        strcpy(rel, ".");
        return 1;
    }
    if (path[root_len] != '/') return 0;
    strcpy(rel, path + root_len + 1);
    return 1;
}

static void install(const char *name, const char *data, size_t size, int from_fd) {
    /* Write shadow/name.tmp (from `data`, or copied from `from_fd`), then rename it. */
    char tmp[PATH_MAX], final[PATH_MAX];
    format(final, sizeof final, "%s/%s", shadow, name);
    format(tmp, sizeof tmp, "%s/%s.tmp", shadow, name);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) fail("open", tmp);
    if (from_fd >= 0) {
        char buffer[1 << 16];
        off_t offset = 0;
        for (;;) {
            ssize_t got = pread(from_fd, buffer, sizeof buffer, offset);
            if (got < 0) fail("read", name);
            if (got == 0) break;
            for (ssize_t done = 0; done < got;) {
                ssize_t put = write(out, buffer + done, (size_t)(got - done));
                if (put < 0) fail("write", tmp);
                done += put;
            }
            offset += got;
        }
    } else {
        for (size_t done = 0; done < size;) {
            ssize_t put = write(out, data + done, size - done);
            if (put < 0) fail("write", tmp);
            done += (size_t)put;
        }
    }
    if (close(out) != 0) fail("close", tmp);
    if (rename(tmp, final) != 0) fail("rename", tmp);
}

/* The whole content of the file at `path` (a name, or /proc/self/fd/N for a descriptor,
 * which reaches the file even if it was renamed or removed) is durable now. */
static void record_file(const char *path) {
    char id[128], name[160];
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        if (errno == ENOENT) return; /* removed meanwhile: its data no longer matters */
        fail("open", path);
    }
    identity(in, "", AT_EMPTY_PATH, id, sizeof id);
    format(name, sizeof name, "file-%s", id);
    install(name, NULL, 0, in);
    close(in);
}

/* The directory's entries are durable now: "f <identity> <name>" or "d <name>" lines. */
static void record_dir(const char *path, const char *rel) {
    DIR *dir = opendir(path);
    if (dir == NULL) fail("opendir", path);
    size_t cap = 4096, len = 0;
    char *listing = malloc(cap);
    if (listing == NULL) fail("malloc", path);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        const char *n = entry->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0) continue;
        struct stat st;
        if (fstatat(dirfd(dir), n, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        char line[PATH_MAX + 160];
        if (S_ISDIR(st.st_mode)) {
            format(line, sizeof line, "d %s\n", n);
        } else if (S_ISREG(st.st_mode)) {
            char id[128];
            identity(dirfd(dir), n, AT_SYMLINK_NOFOLLOW, id, sizeof id);
            format(line, sizeof line, "f %s %s\n", id, n);
        } else {
            continue;
        }
        size_t add = strlen(line);
        if (len + add + 1 > cap) {
            cap = 2 * (len + add + 1);
            listing = realloc(listing, cap);
            if (listing == NULL) fail("realloc", path);
        }
        memcpy(listing + len, line, add);
        len += add;
    }
    closedir(dir);
    char name[PATH_MAX + 8];
    format(name, sizeof name, "dir-%s", rel);
    for (char *c = name; *c; c++)
        if (*c == '/') *c = '|';
    install(name, listing, len, -1);
    free(listing);
}

/* Everything under `path` is durable now (sync(), and the baseline at start). */
static void record_tree(const char *path, const char *rel) {
    record_dir(path, rel);
    DIR *dir = opendir(path);
    if (dir == NULL) fail("opendir", path);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        const char *n = entry->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0) continue;
        char child[PATH_MAX], child_rel[PATH_MAX];
        format(child, sizeof child, "%s/%s", path, n);
        if (strcmp(rel, ".") == 0)
            format(child_rel, sizeof child_rel, "%s", n);
        else
            format(child_rel, sizeof child_rel, "%s/%s", rel, n);
        struct stat st;
        if (lstat(child, &st) != 0) continue;
        if (S_ISDIR(st.st_mode))
            record_tree(child, child_rel);
        else if (S_ISREG(st.st_mode))
            record_file(child);
    }
    closedir(dir);
}

static void record_fd(int fd) {
    char path[PATH_MAX], rel[PATH_MAX];
    if (!enabled || !watched(fd, path, rel)) return;
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        record_dir(path, rel);
    } else if (S_ISREG(st.st_mode)) {
        char self[64];
        format(self, sizeof self, "/proc/self/fd/%d", fd);
        record_file(self);
    }
}

__attribute__((constructor)) static void start(void) {
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_sync = dlsym(RTLD_NEXT, "sync");
    real_syncfs = dlsym(RTLD_NEXT, "syncfs");
    const char *dir = getenv("PAXOSD_POWERLOSS_DIR");
    const char *keep = getenv("PAXOSD_POWERLOSS_SHADOW");
    if (dir == NULL || keep == NULL) return;
    if (realpath(dir, root) == NULL || realpath(keep, shadow) == NULL) return;
    root_len = strlen(root);
    enabled = 1;
    char marker[PATH_MAX];
    format(marker, sizeof marker, "%s/BASELINE", shadow);
    if (access(marker, F_OK) != 0) {
        record_tree(root, ".");
        install("BASELINE", "", 0, -1);
    }
}

int fsync(int fd) {
    int result = real_fsync(fd);
    if (result == 0) record_fd(fd);
    return result;
}

int fdatasync(int fd) {
    int result = real_fdatasync(fd);
    if (result == 0) record_fd(fd);
    return result;
}

void sync(void) {
    real_sync();
    if (enabled) record_tree(root, ".");
}

int syncfs(int fd) {
    int result = real_syncfs(fd);
    if (result == 0 && enabled) record_tree(root, ".");
    return result;
}
