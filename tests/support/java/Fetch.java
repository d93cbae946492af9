// A JSSE TLS client for tests/tests/record_java.rs: connects to 127.0.0.1:PORT and
// handshakes (the test server's self-signed certificate is refused, which is fine: the
// point is a Java process that made a TLS connection spliff cannot record).
public class Fetch {
    public static void main(String[] args) throws Exception {
        try (javax.net.ssl.SSLSocket socket = (javax.net.ssl.SSLSocket) javax.net.ssl.SSLSocketFactory
                .getDefault().createSocket("127.0.0.1", Integer.parseInt(args[0]))) {
            socket.startHandshake();
        } catch (javax.net.ssl.SSLException e) {
            System.out.println("handshake refused: " + e.getMessage());
        }
    }
}
