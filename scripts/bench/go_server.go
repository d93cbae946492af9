// A Go net/http TLS server for scripts/bench-tls-floor.sh: GET /1k.bin
// returns 1 KiB, over HTTP/1.1 or h2 (ALPN), with Go's crypto/tls.
//
//	go build -o server go_server.go && ./server 127.0.0.1:18651 cert.pem key.pem
package main

import (
	"crypto/rand"
	"net/http"
	"os"
)

func main() {
	body := make([]byte, 1024)
	if _, err := rand.Read(body); err != nil {
		panic(err)
	}
	http.HandleFunc("/1k.bin", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})
	panic(http.ListenAndServeTLS(os.Args[1], os.Args[2], os.Args[3], nil))
}
