// pgjdbc's side of test_pinning_drivers.py: runs a script of steps on three connections
// (a makes session state, b and c interleave transactions) and prints one line per step,
// "NN who result", for comparison with the same script run directly against PostgreSQL.
// Script lines, tab-separated: op who [arg1 [arg2]] [param...], a param "i:5" or "s:text".
//   x   who sql            Statement.execute: "ok" or "err SQLSTATE"
//   q   who sql params...  Statement (no params) or PreparedStatement: the rows, "v,v;v,v"
//   p   who sql params...  PreparedStatement server-prepared at once (prepareThreshold 1)
//   begin / commit / rollback who     setAutoCommit(false) / commit / rollback (autocommit
//                                     again after commit and rollback)
//   open who name sql / fetch who name n / close who name   a WITH HOLD cursor, in SQL
//   pid who            "#pid who N" (not compared: the backend differs through a pooler)
//   check tag          "@check tag", then waits for a line on stdin (the test's look at
//                      the pooler's console)
// Run: java -cp /usr/share/java/postgresql.jar PinJdbc.java URL USER PASSWORD SCRIPT
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.postgresql.PGStatement;

public class PinJdbc {
    static final Map<String, Connection> conns = new HashMap<>();

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        List<String> script = Files.readAllLines(Paths.get(args[3]));
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String who : new String[] {"a", "b", "c"})
            conns.put(who, DriverManager.getConnection(args[0], props));
        int n = 0;
        for (String line : script) {
            String[] f = line.split("\t", -1);
            String res = step(f);
            if (res.startsWith("@") || res.startsWith("#"))
                System.out.println(res);
            else
                System.out.println(String.format("%02d %s %s", n, f[1], res));
            System.out.flush();
            if (res.startsWith("@"))
                in.readLine();
            n++;
        }
        for (Connection c : conns.values())
            c.close();
    }

    static String step(String[] f) {
        Connection c = conns.get(f[1]);
        try {
            switch (f[0]) {
            case "check":
                return "@check " + f[1];
            case "pid":
                return "#pid " + f[1] + " " + rows(c, "SELECT pg_backend_pid()", f, 3, false);
            case "x":
                try (Statement st = c.createStatement()) {
                    st.execute(f[2]);
                }
                return "ok";
            case "q":
                return rows(c, f[2], f, 3, false);
            case "p":
                return rows(c, f[2], f, 3, true);
            case "begin":
                c.setAutoCommit(false);
                return "ok";
            case "commit":
            case "rollback":
                try {
                    if (f[0].equals("commit"))
                        c.commit();
                    else
                        c.rollback();
                } finally {
                    c.setAutoCommit(true);
                }
                return "ok";
            case "open":
                try (Statement st = c.createStatement()) {
                    st.execute("DECLARE " + f[2] + " CURSOR WITH HOLD FOR " + f[3]);
                }
                return "ok";
            case "fetch":
                return rows(c, "FETCH " + f[3] + " FROM " + f[2], f, 4, false);
            case "close":
                try (Statement st = c.createStatement()) {
                    st.execute("CLOSE " + f[2]);
                }
                return "ok";
            default:
                throw new IllegalArgumentException("unknown op " + f[0]);
            }
        } catch (SQLException e) {
            return "err " + e.getSQLState();
        }
    }

    /* SQL's rows ("v,v;v,v", "ok" when it returns none): through a Statement, or a
     * PreparedStatement when F has parameters from index FROM or PREPARED is asked for. */
    static String rows(Connection c, String sql, String[] f, int from, boolean prepared)
            throws SQLException {
        boolean params = f.length > from && !f[from].isEmpty();
        if (!params && !prepared) {
            try (Statement st = c.createStatement()) {
                return st.execute(sql) ? render(st.getResultSet()) : "ok";
            }
        }
        try (PreparedStatement ps = c.prepareStatement(sql.replaceAll("\\$[0-9]+", "?"))) {
            if (prepared)
                ps.unwrap(PGStatement.class).setPrepareThreshold(1);
            for (int i = from; params && i < f.length; i++) {
                if (f[i].startsWith("i:"))
                    ps.setInt(i - from + 1, Integer.parseInt(f[i].substring(2)));
                else
                    ps.setString(i - from + 1, f[i].substring(2));
            }
            return ps.execute() ? render(ps.getResultSet()) : "ok";
        }
    }

    static String render(ResultSet rs) throws SQLException {
        int n = rs.getMetaData().getColumnCount();
        StringBuilder sb = new StringBuilder();
        int rows = 0;
        while (rs.next()) {
            if (rows++ > 0)
                sb.append(';');
            for (int j = 1; j <= n; j++) {
                String v = rs.getString(j);
                sb.append(j > 1 ? "," : "").append(v == null ? "NULL" : v);
            }
        }
        return rows > 0 ? sb.toString() : "(none)";
    }
}
