// pgjdbc LISTEN through pgcoro in transaction mode: LISTEN in autocommit and inside a
// transaction (committed, rolled back), UNLISTEN, and getNotifications while other
// statements run, each transaction possibly on another server. Prints "ok" or fails.
// Run: java -cp /usr/share/java/postgresql.jar ListenJdbc.java URL USER PASSWORD
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;

public class ListenJdbc {
    static Connection listener, sender;

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    static void notify(String channel, String payload) throws Exception {
        try (Statement st = sender.createStatement()) {
            st.execute("NOTIFY " + channel + ", '" + payload + "'");
        }
    }

    // The notifications LISTENER gets up to the marker PAYLOAD (on channel jm), as
    // "channel:payload", in order.
    static List<String> untilMarker(String payload) throws Exception {
        notify("jm", payload);
        List<String> got = new ArrayList<>();
        long deadline = System.currentTimeMillis() + 60000;
        PGConnection pg = listener.unwrap(PGConnection.class);
        while (System.currentTimeMillis() < deadline) {
            PGNotification[] ns = pg.getNotifications(1000);
            if (ns == null) continue;
            for (PGNotification n : ns) {
                if (n.getName().equals("jm") && n.getParameter().equals(payload)) return got;
                got.add(n.getName() + ":" + n.getParameter());
            }
        }
        throw new AssertionError("marker " + payload + " not received; got " + got);
    }

    static void query(Connection c) throws Exception {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("select 1")) {
            rs.next();
        }
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        listener = DriverManager.getConnection(args[0], props);
        sender = DriverManager.getConnection(args[0], props);
        try (Statement st = listener.createStatement()) {
            st.execute("LISTEN jm");
            st.execute("LISTEN ja");
            List<String> want = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                notify("ja", "a" + i);
                want.add("ja:a" + i);
                query(listener);
            }
            List<String> got = untilMarker("1");
            check(got.equals(want), "autocommit LISTEN: got " + got);

            listener.setAutoCommit(false);
            st.execute("LISTEN jb");
            listener.commit();
            notify("jb", "after-commit");
            st.execute("LISTEN jc");
            listener.rollback();
            notify("jc", "after-rollback");
            listener.setAutoCommit(true);
            got = untilMarker("2");
            check(got.equals(List.of("jb:after-commit")), "LISTEN in a transaction: got " + got);

            st.execute("UNLISTEN ja");
            notify("ja", "gone");
            notify("jb", "b2");
            got = untilMarker("3");
            check(got.equals(List.of("jb:b2")), "UNLISTEN: got " + got);
            // the same statement text again, past prepareThreshold (a named statement)
            for (int i = 0; i < 6; i++) {
                st.execute("LISTEN ja");
                st.execute("UNLISTEN ja");
            }
            st.execute("LISTEN ja");
            notify("ja", "again");
            got = untilMarker("4");
            check(got.equals(List.of("ja:again")), "LISTEN past prepareThreshold: got " + got);
        }
        listener.close();
        sender.close();
        System.out.println("ok");
    }
}
