// pgjdbc across a schema change: five connections (in transactions at once, so through
// pgcoro on five servers) run a query past prepareThreshold (a server-prepared named
// statement S_n), another connection alters the table, then each runs the query again,
// and fresh connections run it. Prints one line per execution: "<who> ok <columns>
// <values>" or "<who> err <SQLSTATE>", for comparison with PostgreSQL directly.
// Run: java -cp /usr/share/java/postgresql.jar StaleJdbc.java URL USER PASSWORD TABLE
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class StaleJdbc {
    static String url;
    static Properties props = new Properties();

    public static void main(String[] args) throws Exception {
        url = args[0];
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        props.setProperty("prepareThreshold", "2");
        String sql = "select * from " + args[3] + " order by a";
        Connection[] cs = new Connection[5];
        PreparedStatement[] ps = new PreparedStatement[5];
        for (int i = 0; i < cs.length; i++) {
            cs[i] = DriverManager.getConnection(url, props);
            cs[i].setAutoCommit(false);
            ps[i] = cs[i].prepareStatement(sql);
            for (int k = 0; k < 4; k++)
                run("c" + i + " before", ps[i]);
        }
        for (Connection c : cs) {
            c.commit();
            c.setAutoCommit(true);
        }
        try (Connection c = DriverManager.getConnection(url, props);
             Statement st = c.createStatement()) {
            st.execute("alter table " + args[3] + " add column b int default 7");
        }
        for (int i = 0; i < cs.length; i++)
            for (int k = 0; k < 3; k++)
                run("c" + i + " after", ps[i]);
        // inside a transaction: the error fails it; after a rollback the query works
        for (int i = 0; i < 2; i++) {
            PreparedStatement p = cs[i].prepareStatement(sql);
            for (int k = 0; k < 3; k++)
                run("c" + i + " again", p);
        }
        for (int f = 0; f < 3; f++) {
            try (Connection c = DriverManager.getConnection(url, props);
                 PreparedStatement p = c.prepareStatement(sql)) {
                for (int k = 0; k < 4; k++)
                    run("fresh" + f, p);
            }
        }
        try (Statement st = cs[0].createStatement()) {
            st.execute("alter table " + args[3] + " drop column b");
        }
        cs[0].setAutoCommit(false);
        for (int k = 0; k < 2; k++)
            run("c0 in-transaction", ps[0]);
        cs[0].rollback();
        for (int k = 0; k < 2; k++)
            run("c0 rolled-back", ps[0]);
        for (Connection c : cs)
            c.close();
    }

    static void run(String who, PreparedStatement p) {
        try (ResultSet rs = p.executeQuery()) {
            int n = rs.getMetaData().getColumnCount();
            StringBuilder sb = new StringBuilder(who + " ok " + n);
            while (rs.next())
                for (int j = 1; j <= n; j++)
                    sb.append(' ').append(rs.getString(j));
            System.out.println(sb);
        } catch (SQLException e) {
            System.out.println(who + " err " + e.getSQLState());
        }
    }
}
