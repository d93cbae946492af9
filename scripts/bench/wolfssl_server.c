/*
 * A wolfSSL HTTP/1.1 server for scripts/bench-tls-floor.sh: one thread per
 * connection (all in one process, so `--pid` covers them), keep-alive, every
 * request answered with the same 1 KiB body.
 *
 *   cc -O2 -o server wolfssl_server.c -lwolfssl -lpthread
 *   ./server 18651 cert.pem key.pem
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static WOLFSSL_CTX *ctx;
static char response[2048];
static int response_len;

/* Answers every request of one connection (requests without a body). */
static void *serve(void *arg)
{
	int fd = (int)(long)arg;
	WOLFSSL *ssl = wolfSSL_new(ctx);
	char buf[8192];
	int have = 0;

	if (!ssl || wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS || wolfSSL_accept(ssl) != WOLFSSL_SUCCESS)
		goto out;
	for (;;) {
		char *end;
		int n = wolfSSL_read(ssl, buf + have, (int)sizeof(buf) - 1 - have);

		if (n <= 0)
			break;
		have += n;
		buf[have] = 0;
		while ((end = strstr(buf, "\r\n\r\n")) != NULL) {
			int used = (int)(end + 4 - buf);

			if (wolfSSL_write(ssl, response, response_len) != response_len)
				goto out;
			memmove(buf, buf + used, (size_t)(have - used + 1));
			have -= used;
		}
		if (have == (int)sizeof(buf) - 1)
			break;
	}
out:
	if (ssl) {
		wolfSSL_shutdown(ssl);
		wolfSSL_free(ssl);
	}
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	char body[1024];
	int listener, one = 1;

	if (argc != 4) {
		fprintf(stderr, "usage: %s PORT CERT KEY\n", argv[0]);
		return 2;
	}
	/* A client that leaves mid-response (h2load at its deadline) must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	memset(body, 'x', sizeof(body));
	response_len = snprintf(response, sizeof(response),
				"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
				"Content-Length: %zu\r\n\r\n",
				sizeof(body));
	memcpy(response + response_len, body, sizeof(body));
	response_len += (int)sizeof(body);

	wolfSSL_Init();
	ctx = wolfSSL_CTX_new(wolfTLS_server_method());
	if (!ctx ||
	    wolfSSL_CTX_use_certificate_file(ctx, argv[2], WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_use_PrivateKey_file(ctx, argv[3], WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
		fprintf(stderr, "cannot load %s / %s\n", argv[2], argv[3]);
		return 1;
	}
	listener = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	addr.sin_port = htons((unsigned short)atoi(argv[1]));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(listener, (struct sockaddr *)&addr, sizeof(addr)) || listen(listener, 128)) {
		perror("bind/listen");
		return 1;
	}
	for (;;) {
		pthread_t thread;
		int fd = accept(listener, NULL, NULL);

		if (fd < 0)
			continue;
		if (pthread_create(&thread, NULL, serve, (void *)(long)fd) == 0)
			pthread_detach(thread);
		else
			close(fd);
	}
}
