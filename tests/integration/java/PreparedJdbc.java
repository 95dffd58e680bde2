// pgjdbc through pgcoro in transaction mode: threads run statements past prepareThreshold
// (server-prepared, named S_n) and fetch with setFetchSize inside transactions (named
// portals), each transaction possibly on another server. Prints "ok <checksum>" or fails.
// Run: java -cp /usr/share/java/postgresql.jar PreparedJdbc.java URL USER PASSWORD THREADS
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;

public class PreparedJdbc {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        props.setProperty("prepareThreshold", "2");
        int threads = Integer.parseInt(args[3]);
        AtomicLong total = new AtomicLong();
        List<Throwable> errors = new ArrayList<>();
        List<Thread> ts = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            final int id = t;
            Thread th = new Thread(() -> {
                try (Connection conn = DriverManager.getConnection(url, props)) {
                    total.addAndGet(work(conn, id));
                } catch (Throwable e) {
                    synchronized (errors) { errors.add(e); }
                }
            });
            ts.add(th);
            th.start();
        }
        for (Thread th : ts) th.join();
        if (!errors.isEmpty()) {
            for (Throwable e : errors) e.printStackTrace();
            System.exit(1);
        }
        System.out.println("ok " + total.get());
    }

    static long work(Connection conn, int id) throws Exception {
        long sum = 0;
        try (PreparedStatement ps = conn.prepareStatement("select ?::int * 2 + ?::int")) {
            for (int i = 0; i < 20; i++) {
                ps.setInt(1, i);
                ps.setInt(2, id);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    if (rs.getInt(1) != i * 2 + id) throw new AssertionError("wrong result");
                    sum += rs.getInt(1);
                }
            }
        }
        for (int round = 0; round < 5; round++) {
            conn.setAutoCommit(false);
            try (PreparedStatement ps = conn.prepareStatement(
                    "select g, md5(g::text) from generate_series(1, ?) g")) {
                ps.setFetchSize(7);
                for (int rep = 0; rep < 3; rep++) {
                    ps.setInt(1, 100 + id);
                    int n = 0;
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            n++;
                            sum += rs.getInt(1);
                            if (rs.getString(2).length() != 32) throw new AssertionError("md5");
                        }
                    }
                    if (n != 100 + id) throw new AssertionError("rows " + n);
                }
            }
            conn.commit();
            conn.setAutoCommit(true);
        }
        return sum;
    }
}
