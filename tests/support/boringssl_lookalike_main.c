/*
 * main of the BoringSSL lookalike (boringssl_lookalike.S). Given an IPv4
 * address and a port it connects there once, in plain TCP, and lingers a
 * moment (a recorder reads its memory maps when it sees the connection), so
 * that a recorder names the program in its end-of-capture report. The calls
 * into the lookalike's functions are never made, but mark where each starts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

void SSL_new(void);
void SSL_do_handshake(void);
void SSL_write(void);
void SSL_read(void);
void SSL_peek(void);

int main(int argc, char **argv)
{
	if (argc == 3) {
		struct sockaddr_in to = { .sin_family = AF_INET };
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		to.sin_port = htons((unsigned short)atoi(argv[2]));
		if (fd < 0 || inet_pton(AF_INET, argv[1], &to.sin_addr) != 1 ||
		    connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0)
			return 1;
		sleep(2);
		close(fd);
	}
	if (argc > 1000) {
		SSL_new();
		SSL_do_handshake();
		SSL_write();
		SSL_read();
		SSL_peek();
	}
	return 0;
}
