/* A process that lives in the kernel: read(2) from /dev/zero in a loop for SECONDS (argv[1], default 6),
 * then exit. `stapdoctor profile --kernel` must draw named kernel frames (read_iter_zero, vfs_read, ...)
 * above its user frames (main -> read_loop -> read). It exits by itself before the profile's window ends
 * so the module unloads with no process hammering the syscall entry (see tests/e2e/README.md, the panic
 * observed once at unload under QEMU's multi-threaded TCG). */
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static char buf[4096];

__attribute__((noinline)) static long read_loop(int fd, time_t until)
{
	long n = 0;
	while (time(NULL) < until)
		for (int i = 0; i < 64; i++)
			n += read(fd, buf, sizeof buf);
	return n;
}

int main(int argc, char **argv)
{
	int fd = open("/dev/zero", O_RDONLY);
	if (fd < 0)
		return 1;
	return read_loop(fd, time(NULL) + (argc > 1 ? atoi(argv[1]) : 6)) > 0 ? 0 : 2;
}
