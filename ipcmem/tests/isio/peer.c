/* A C peer of ipcmem's ImageStreamIO tests: makes, writes, reads and waits on streams the way
 * ImageStreamIO does (plain stores, glibc sem_t, getsemwaitindex's claim), and prints the
 * layout of its structures. Output lines for the test start with "@@ ".
 *
 *   peer layout
 *   peer create NAME TYPE NSEM NKW CIRCULAR X [Y [Z]]
 *   peer write NAME COUNT
 *   peer read NAME TIMEOUT_MS
 *   peer info NAME
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "isio.h"

typedef struct {
    uint8_t *map;
    size_t len;
    isio_metadata *md;
    uint8_t *data;
    isio_keyword *kw;
    sem_t *sems;
    sem_t *semlog;
    pid_t *readpid;
    pid_t *writepid;
    uint32_t *semctrl;
    uint32_t *semstatus;
    isio_proc_trace *trace;
    struct timespec *atimes;
    struct timespec *writetimes;
    uint64_t *cnts;
    size_t frame;    /* bytes of a frame (a slice when circular) */
    int circular;
} stream;

static int typesize(int code) {
    static const int sizes[] = {0, 1, 1, 2, 2, 4, 4, 8, 8, 4, 8, 8, 16, 2};
    return code >= 1 && code <= 13 ? sizes[code] : -1;
}

static void path_of(const char *name, char *path, size_t len) {
    const char *dir = getenv("MILK_SHM_DIR");
    snprintf(path, len, "%s/%s.im.shm", dir ? dir : "/milk/shm", name);
}

/* Points every part at its place, as ImageStreamIO's sizing does; returns the file size. */
static uint64_t place(stream *s, uint8_t *map) {
    isio_metadata *md = (isio_metadata *)map;
    uint64_t at = ISIO_ROUND8(sizeof(isio_metadata));
    s->md = md;
    s->data = map + at; at += ISIO_ROUND8(md->imdatamemsize);
    s->kw = (isio_keyword *)(map + at); at += ISIO_ROUND8(sizeof(isio_keyword) * md->NBkw);
    s->sems = (sem_t *)(map + at); at += ISIO_ROUND8(sizeof(sem_t) * md->sem);
    s->semlog = (sem_t *)(map + at); at += ISIO_ROUND8(sizeof(sem_t));
    s->readpid = (pid_t *)(map + at); at += ISIO_ROUND8(sizeof(pid_t) * md->sem);
    s->writepid = (pid_t *)(map + at); at += ISIO_ROUND8(sizeof(pid_t) * md->sem);
    s->semctrl = (uint32_t *)(map + at); at += ISIO_ROUND8(sizeof(uint32_t) * md->sem);
    s->semstatus = (uint32_t *)(map + at); at += ISIO_ROUND8(sizeof(uint32_t) * md->sem);
    s->trace = (isio_proc_trace *)(map + at); at += ISIO_ROUND8(sizeof(isio_proc_trace) * md->NBproctrace);
    s->circular = (md->imagetype & 0xF000F) == (ISIO_CIRCULAR | ISIO_ZTEMPORAL);
    if (s->circular) {
        s->atimes = (struct timespec *)(map + at); at += ISIO_ROUND8(sizeof(struct timespec) * md->size[2]);
        s->writetimes = (struct timespec *)(map + at); at += ISIO_ROUND8(sizeof(struct timespec) * md->size[2]);
        s->cnts = (uint64_t *)(map + at); at += ISIO_ROUND8(sizeof(uint64_t) * md->size[2]);
    }
    at += ISIO_ROUND8(sizeof(isio_cb_frame) * md->CBsize);
    at += ISIO_ROUND8(md->imdatamemsize * md->CBsize);
    s->frame = s->circular && md->naxis == 3 ? md->imdatamemsize / md->size[2] : md->imdatamemsize;
    s->circular = s->circular && md->naxis == 3;
    return at;
}

static int open_stream(const char *name, stream *s) {
    char path[1024];
    path_of(name, path, sizeof path);
    int fd = open(path, O_RDWR);
    if (fd < 0) { perror(path); return -1; }
    struct stat st;
    fstat(fd, &st);
    if ((size_t)st.st_size <= sizeof(isio_metadata)) { fprintf(stderr, "too small\n"); return -1; }
    s->len = st.st_size;
    s->map = mmap(NULL, s->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (s->map == MAP_FAILED) { perror("mmap"); return -1; }
    if (place(s, s->map) != s->len) { fprintf(stderr, "size mismatch\n"); return -1; }
    if (strcmp(s->md->version, ISIO_VERSION) != 0) { fprintf(stderr, "bad version\n"); return -1; }
    return 0;
}

static void set_keyword(stream *s, const char *name, char type, int64_t l, double d, const char *str,
                        const char *comment) {
    int slot = -1;
    for (int i = 0; i < s->md->NBkw; i++) {
        if (s->kw[i].type != 'N' && strncmp(s->kw[i].name, name, 16) == 0) { slot = i; break; }
        if (slot < 0 && s->kw[i].type == 'N') slot = i;
    }
    if (slot < 0) return;
    isio_keyword *k = &s->kw[slot];
    strncpy(k->name, name, 15);
    k->type = type;
    if (type == 'L') k->value.numl = l;
    if (type == 'D') k->value.numf = d;
    if (type == 'S') strncpy(k->value.valstr, str, 15);
    strncpy(k->comment, comment, 79);
    k->cnt++;
}

static int cmd_layout(void) {
#define F(S, f) printf("@@ " #S " " #f " %zu %zu\n", offsetof(S, f), sizeof(((S *)0)->f))
#define Z(S) printf("@@ " #S " sizeof 0 %zu\n", sizeof(S))
    F(isio_metadata, version); F(isio_metadata, name); F(isio_metadata, naxis); F(isio_metadata, size);
    F(isio_metadata, nelement); F(isio_metadata, datatype); F(isio_metadata, imagetype);
    F(isio_metadata, creationtime); F(isio_metadata, lastaccesstime); F(isio_metadata, atime);
    F(isio_metadata, writetime); F(isio_metadata, creatorPID); F(isio_metadata, ownerPID);
    F(isio_metadata, shared); F(isio_metadata, inode); F(isio_metadata, location); F(isio_metadata, status);
    F(isio_metadata, flag); F(isio_metadata, logflag); F(isio_metadata, sem); F(isio_metadata, NBproctrace);
    F(isio_metadata, cnt0); F(isio_metadata, cnt1); F(isio_metadata, cnt2); F(isio_metadata, write);
    F(isio_metadata, NBkw); F(isio_metadata, CBsize); F(isio_metadata, CBindex); F(isio_metadata, CBcycle);
    F(isio_metadata, imdatamemsize); F(isio_metadata, cudaMemHandle); Z(isio_metadata);
    F(isio_keyword, name); F(isio_keyword, type); F(isio_keyword, value); F(isio_keyword, cnt);
    F(isio_keyword, comment); Z(isio_keyword);
    F(isio_proc_trace, triggermode); F(isio_proc_trace, procwrite_PID); F(isio_proc_trace, trigger_inode);
    F(isio_proc_trace, ts_procstart); F(isio_proc_trace, ts_streamupdate); F(isio_proc_trace, trigsemindex);
    F(isio_proc_trace, triggerstatus); F(isio_proc_trace, cnt0); Z(isio_proc_trace);
    F(isio_cb_frame, cnt0); F(isio_cb_frame, cnt1); F(isio_cb_frame, atime); F(isio_cb_frame, writetime);
    Z(isio_cb_frame);
    printf("@@ sem_t sizeof 0 %zu\n", sizeof(sem_t));
    return 0;
}

/* Makes a stream as ImageStreamIO_createIm_gpu does: sizes, file, metadata, semaphores, version last. */
static int cmd_create(int argc, char **argv) {
    if (argc < 8) return 2;
    const char *name = argv[2];
    int type = atoi(argv[3]), nsem = atoi(argv[4]), nkw = atoi(argv[5]), circular = atoi(argv[6]);
    int naxis = argc - 7;
    isio_metadata tmp = {0};
    tmp.naxis = naxis;
    tmp.nelement = 1;
    for (int i = 0; i < naxis; i++) { tmp.size[i] = atoi(argv[7 + i]); tmp.nelement *= tmp.size[i]; }
    tmp.datatype = type;
    tmp.imagetype = circular ? (ISIO_CIRCULAR | ISIO_ZTEMPORAL) : ISIO_MATH;
    tmp.NBkw = nkw;
    tmp.NBproctrace = 10;
    tmp.shared = 1;
    tmp.location = -1;
    tmp.sem = nsem;
    tmp.imdatamemsize = typesize(type) * tmp.nelement;
    stream s;
    uint64_t size = place(&s, (uint8_t *)&tmp);

    char path[1024];
    path_of(name, path, sizeof path);
    umask(0);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_TRUNC, 0666);
    if (fd < 0 && errno == EEXIST) { unlink(path); fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_TRUNC, 0666); }
    if (fd < 0) { perror(path); return 1; }
    if (lseek(fd, size - 1, SEEK_SET) != (off_t)(size - 1) || write(fd, "", 1) != 1) { perror("size"); return 1; }
    uint8_t *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) { perror("mmap"); return 1; }
    tmp.version[0] = 0;
    memcpy(map, &tmp, sizeof tmp);
    place(&s, map);
    strncpy(s.md->name, name, 79);
    struct stat st;
    fstat(fd, &st);
    s.md->inode = st.st_ino;
    s.md->creatorPID = getpid();
    clock_gettime(CLOCK_TAI, &s.md->creationtime);
    s.md->lastaccesstime = s.md->creationtime;
    for (int i = 0; i < nsem; i++) {
        sem_init(&s.sems[i], 1, 0);
        s.readpid[i] = -1;
        s.writepid[i] = -1;
    }
    for (int i = 0; i < 10; i++) s.trace[i].trigsemindex = -1;
    for (int i = 0; i < nkw; i++) s.kw[i].type = 'N';
    set_keyword(&s, "GAIN", 'L', 42, 0, NULL, "loop gain");
    set_keyword(&s, "EXPTIME", 'D', 0, 0.25, NULL, "exposure [s]");
    set_keyword(&s, "MODE", 'S', 0, 0, "fast", "readout mode");
    strcpy(s.md->version, ISIO_VERSION);
    printf("@@ created %llu\n", (unsigned long long)size);
    return 0;
}

/* Writes COUNT frames as ImageStreamIO_UpdateIm does; every byte of frame n is n mod 256, its
 * atime is (1000 + n, n). */
static int cmd_write(int argc, char **argv) {
    if (argc < 4) return 2;
    stream s;
    if (open_stream(argv[2], &s)) return 1;
    int count = atoi(argv[3]);
    for (int i = 0; i < count; i++) {
        uint64_t n = s.md->cnt0 + 1;
        size_t slice = 0;
        if (s.circular && s.md->cnt0 > 0) slice = (s.md->cnt1 + 1) % s.md->size[2];
        s.md->write = 1;
        memset(s.data + slice * s.frame, (int)(n & 0xff), s.frame);
        struct timespec now, atime = {1000 + (time_t)n, (long)n};
        clock_gettime(CLOCK_TAI, &now);
        if (s.circular) {
            s.cnts[slice] = n;
            s.atimes[slice] = atime;
            s.writetimes[slice] = now;
            s.md->cnt1 = slice;
        }
        s.md->writetime = now;
        s.md->atime = atime;
        s.md->cnt0++;
        s.md->write = 0;
        set_keyword(&s, "CNT", 'L', (int64_t)n, 0, NULL, "frames written by the C peer");
        for (int k = 0; k < s.md->sem; k++) {
            int value;
            sem_getvalue(&s.sems[k], &value);
            if (value < ISIO_SEM_MAXVAL) { sem_post(&s.sems[k]); s.writepid[k] = getpid(); }
        }
        int value;
        sem_getvalue(s.semlog, &value);
        if (value < ISIO_SEM_MAXVAL) sem_post(s.semlog);
    }
    printf("@@ wrote %llu\n", (unsigned long long)s.md->cnt0);
    return 0;
}

/* Claims a semaphore as ImageStreamIO_getsemwaitindex does, waits for a post with
 * sem_timedwait, then prints the frame's counters, first byte and times. */
static int cmd_read(int argc, char **argv) {
    if (argc < 4) return 2;
    stream s;
    if (open_stream(argv[2], &s)) return 1;
    pid_t me = getpid();
    int index = -1;
    for (int i = 0; i < s.md->sem && index < 0; i++) if (s.readpid[i] == me) index = i;
    for (int i = 0; i < s.md->sem && index < 0; i++) {
        if (s.readpid[i] == 0 || getpgid(s.readpid[i]) < 0) { s.readpid[i] = me; index = i; }
    }
    if (index < 0) { printf("@@ none\n"); return 1; }
    int value;
    sem_getvalue(&s.sems[index], &value);
    for (int i = 0; i < value; i++) sem_trywait(&s.sems[index]);
    printf("@@ claimed %d\n", index);
    fflush(stdout);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    long ms = atol(argv[3]);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000; }
    if (sem_timedwait(&s.sems[index], &deadline) != 0) { printf("@@ timeout\n"); return 1; }
    size_t slice = s.circular ? s.md->cnt1 : 0;
    struct timespec atime = s.circular ? s.atimes[slice] : s.md->atime;
    printf("@@ frame %llu %llu %u %lld %ld %u\n", (unsigned long long)s.md->cnt0,
           (unsigned long long)s.md->cnt1, s.data[slice * s.frame], (long long)atime.tv_sec, atime.tv_nsec,
           s.writepid[index] == 0 ? 0u : (unsigned)s.writepid[index]);
    return 0;
}

/* Prints what a reader finds: counters, times, keywords, semaphores. */
static int cmd_info(int argc, char **argv) {
    if (argc < 3) return 2;
    stream s;
    if (open_stream(argv[2], &s)) return 1;
    isio_metadata *md = s.md;
    printf("@@ md %s %u %u %u %u %u %llu %llu %u %lld %ld %u\n", md->name, md->naxis, md->size[0], md->size[1],
           md->size[2], md->datatype, (unsigned long long)md->cnt0, (unsigned long long)md->cnt1, md->write,
           (long long)md->atime.tv_sec, md->atime.tv_nsec, (unsigned)md->creatorPID);
    for (int i = 0; i < md->NBkw; i++) {
        isio_keyword *k = &s.kw[i];
        if (k->type == 'L') printf("@@ kw %.16s L %lld %llu %s\n", k->name, (long long)k->value.numl, (unsigned long long)k->cnt, k->comment);
        if (k->type == 'D') printf("@@ kw %.16s D %g %llu %s\n", k->name, k->value.numf, (unsigned long long)k->cnt, k->comment);
        if (k->type == 'S') printf("@@ kw %.16s S %.16s %llu %s\n", k->name, k->value.valstr, (unsigned long long)k->cnt, k->comment);
    }
    for (int i = 0; i < md->sem; i++) {
        int value;
        sem_getvalue(&s.sems[i], &value);
        printf("@@ sem %d %d %d %d\n", i, value, s.readpid[i], s.writepid[i]);
    }
    if (s.circular) {
        for (uint32_t k = 0; k < md->size[2]; k++)
            printf("@@ slice %u %llu %lld %ld %u\n", k, (unsigned long long)s.cnts[k], (long long)s.atimes[k].tv_sec,
                   s.atimes[k].tv_nsec, s.data[k * s.frame]);
    }
    printf("@@ byte0 %u\n", s.data[0]);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "layout")) return cmd_layout();
    if (!strcmp(argv[1], "create")) return cmd_create(argc, argv);
    if (!strcmp(argv[1], "write")) return cmd_write(argc, argv);
    if (!strcmp(argv[1], "read")) return cmd_read(argc, argv);
    if (!strcmp(argv[1], "info")) return cmd_info(argc, argv);
    return 2;
}
