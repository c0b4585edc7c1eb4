// pgjdbc (Debian's libpostgresql-jdbc-java) through rds-iam-proxy: connects with
// PGHOST/PGPORT/PGUSER/PGDATABASE and no password, runs every feature of the client matrix and
// prints one JSON line per feature: {"client", "feature", "ok", "gap"?, "detail"}.
// Compiled and run by tests/tests/clients.rs.

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.PGStatement;
import org.postgresql.copy.CopyManager;

public class PgJdbcSuite {
    static final String CLIENT = "pgjdbc";
    static final String APP = "clients-pgjdbc";
    static final String HOST = env("PGHOST", "127.0.0.1");
    static final String PORT = env("PGPORT", "5432");
    static final String USER = env("PGUSER", "iam_user");
    static final String DATABASE = env("PGDATABASE", "appdb");
    static final String TLS_PORT = System.getenv("CLIENTS_TLS_PORT");
    static final int LARGE_ROWS = Integer.parseInt(env("CLIENTS_LARGE_ROWS", "50000"));
    static final int LARGE_WIDTH = 1000;
    static final int COPY_ROWS = 10000;
    static final long WAIT_MS = 20000;
    static boolean failed = false;

    interface Feature {
        String run() throws Exception;
    }

    static final class Gap extends Exception {
        Gap(String reason) {
            super(reason);
        }
    }

    static String env(String key, String dflt) {
        String v = System.getenv(key);
        return v == null || v.isEmpty() ? dflt : v;
    }

    static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
            }
        }
        return b.append('"').toString();
    }

    static void emit(String feature, boolean ok, String detail, boolean gap) {
        System.out.println("{\"client\":" + json(CLIENT) + ",\"feature\":" + json(feature)
                + ",\"ok\":" + ok + (gap ? ",\"gap\":true" : "") + ",\"detail\":" + json(detail) + "}");
        System.out.flush();
        if (!ok && !gap) failed = true;
    }

    static void run(String feature, Feature f) {
        long start = System.nanoTime();
        try {
            String detail = f.run();
            emit(feature, true, detail == null ? "" : detail, false);
        } catch (Gap g) {
            emit(feature, false, g.getMessage(), true);
        } catch (Throwable e) {
            String state = e instanceof SQLException ? " [" + ((SQLException) e).getSQLState() + "]" : "";
            emit(feature, false, e.getClass().getSimpleName() + state + ": " + e.getMessage()
                    + String.format(" (after %.2fs)", (System.nanoTime() - start) / 1e9), false);
        }
    }

    static void check(boolean cond, String what) {
        if (!cond) throw new AssertionError(what);
    }

    static Connection connect(String port, String... extra) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", USER);
        p.setProperty("ApplicationName", APP);
        p.setProperty("connectTimeout", "10");
        for (int i = 0; i + 1 < extra.length; i += 2) p.setProperty(extra[i], extra[i + 1]);
        return DriverManager.getConnection("jdbc:postgresql://" + HOST + ":" + port + "/" + DATABASE, p);
    }

    static Object one(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            check(rs.next(), "a row from " + sql);
            return rs.getObject(1);
        }
    }

    static byte[] copyText() throws Exception {
        StringBuilder b = new StringBuilder();
        MessageDigest md5 = MessageDigest.getInstance("MD5");
        for (int i = 1; i <= COPY_ROWS; i++) {
            byte[] d = md5.digest(String.valueOf(i).getBytes(StandardCharsets.UTF_8));
            StringBuilder hex = new StringBuilder();
            for (byte x : d) hex.append(String.format("%02x", x));
            b.append(i).append('\t').append(hex).append('\n');
        }
        return b.toString().getBytes(StandardCharsets.UTF_8);
    }

    static String preparedCountSql(String tag) {
        int half = tag.length() / 2;
        return "select count(*) from pg_prepared_statements where strpos(statement, '"
                + tag.substring(0, half) + "' || '" + tag.substring(half) + "') > 0";
    }

    static String runningQuerySql(String tag) {
        return "select count(*) from pg_stat_activity where state = 'active' and pid <> pg_backend_pid() "
                + "and query like '%" + tag + "%' and query not like '%pg_stat_activity%'";
    }

    public static void main(String[] args) throws Exception {
        Class.forName("org.postgresql.Driver");
        System.out.println("{\"client\":" + json(CLIENT) + ",\"version\":" + json("pgjdbc "
                + org.postgresql.util.DriverInfo.DRIVER_VERSION + ", Java " + System.getProperty("java.version")) + "}");
        final Connection[] holder = new Connection[1];
        run("connect", () -> {
            holder[0] = connect(PORT);
            try (Statement st = holder[0].createStatement();
                    ResultSet rs = st.executeQuery("select current_user::text, ssl from pg_stat_ssl where pid = pg_backend_pid()")) {
                rs.next();
                check(USER.equals(rs.getString(1)) && rs.getBoolean(2), rs.getString(1) + " " + rs.getBoolean(2));
                return "as " + rs.getString(1) + ", no password; upstream TLS: " + rs.getBoolean(2);
            }
        });
        final Connection conn = holder[0];
        if (conn == null) System.exit(1);

        run("simple_query", () -> {
            // pgjdbc uses the extended protocol unless preferQueryMode=simple.
            try (Connection c = connect(PORT, "preferQueryMode", "simple"); Statement st = c.createStatement()) {
                check(st.execute("select 1; select 'two'"), "first result is a result set");
                ResultSet rs = st.getResultSet();
                rs.next();
                check(rs.getInt(1) == 1, "first");
                check(st.getMoreResults(), "second result");
                rs = st.getResultSet();
                rs.next();
                check("two".equals(rs.getString(1)), "second");
            }
            return "preferQueryMode=simple: two statements in one Query message";
        });

        run("extended_query", () -> {
            try (PreparedStatement ps = conn.prepareStatement("select ?::int + 1, ?::text")) {
                ps.setInt(1, 41);
                ps.setString(2, "é");
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    check(rs.getInt(1) == 42 && "é".equals(rs.getString(2)), "values");
                }
            }
            return "parameters bound server-side (Parse/Bind/Execute)";
        });

        run("prepared", () -> {
            int[] got = new int[5];
            try (PreparedStatement ps = conn.prepareStatement("select ?::int * 3 /* pgjdbc-prepared */")) {
                ps.unwrap(PGStatement.class).setPrepareThreshold(1);
                for (int i = 0; i < 5; i++) {
                    ps.setInt(1, i);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        got[i] = rs.getInt(1);
                    }
                }
                check(Arrays.equals(got, new int[] {0, 3, 6, 9, 12}), Arrays.toString(got));
                long n = (Long) one(conn, preparedCountSql("pgjdbc-prepared"));
                check(n == 1, n + " server-side prepared statements");
            }
            return "prepareThreshold=1: one named statement on the server, executed 5 times";
        });

        run("pipeline", () -> {
            try (Statement st = conn.createStatement()) {
                st.execute("create temp table many (i int)");
            }
            try (PreparedStatement ps = conn.prepareStatement("insert into many values (?)")) {
                for (int i = 0; i < 1000; i++) {
                    ps.setInt(1, i);
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                check(counts.length == 1000, counts.length + " counts");
            }
            long n = (Long) one(conn, "select count(*) from many");
            check(n == 1000, n + " rows");
            return "executeBatch(): 1000 inserts pipelined (sent without waiting for each result)";
        });

        run("transaction_rollback", () -> {
            try (Statement st = conn.createStatement()) {
                st.execute("create temp table tx_test (i int)");
                conn.setAutoCommit(false);
                st.execute("insert into tx_test values (1)");
                conn.rollback();
                conn.setAutoCommit(true);
            }
            long n = (Long) one(conn, "select count(*) from tx_test");
            check(n == 0, n + " rows after rollback");
            return "setAutoCommit(false); insert; rollback()";
        });

        run("large_result", () -> {
            long start = System.nanoTime();
            long total = 0;
            int n = 0;
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("select i, lpad(i::text, " + LARGE_WIDTH
                            + ", 'x') from generate_series(1, " + LARGE_ROWS + ") i order by i")) {
                while (rs.next()) {
                    n++;
                    String t = rs.getString(2);
                    check(rs.getInt(1) == n && t.length() == LARGE_WIDTH && t.endsWith(String.valueOf(n)), "row " + n);
                    total += t.length();
                }
            }
            check(n == LARGE_ROWS, n + " rows");
            return String.format("%d rows, %.1f MB in %.2fs", n, total / 1e6, (System.nanoTime() - start) / 1e9);
        });

        run("copy_in", () -> {
            try (Statement st = conn.createStatement()) {
                st.execute("create temp table copy_in (i int primary key, t text not null)");
            }
            CopyManager cm = conn.unwrap(PGConnection.class).getCopyAPI();
            long rows = cm.copyIn("copy copy_in (i, t) from stdin", new ByteArrayInputStream(copyText()));
            check(rows == COPY_ROWS, rows + " rows copied");
            Object same = one(conn, "select count(*) = " + COPY_ROWS + " and coalesce(bool_and(t = md5(i::text)), false) from copy_in");
            check(Boolean.TRUE.equals(same), "server-side check");
            return COPY_ROWS + " rows via CopyManager.copyIn, server-side check equal";
        });

        run("copy_out", () -> {
            CopyManager cm = conn.unwrap(PGConnection.class).getCopyAPI();
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            cm.copyOut("copy (select i, md5(i::text) from generate_series(1, " + COPY_ROWS + ") i order by i) to stdout", out);
            check(Arrays.equals(out.toByteArray(), copyText()), out.size() + " bytes differ");
            return COPY_ROWS + " rows, " + out.size() + " bytes, byte-exact, via CopyManager.copyOut";
        });

        run("notify", () -> {
            try (Connection listener = connect(PORT)) {
                try (Statement st = listener.createStatement()) {
                    st.execute("listen clients_pgjdbc");
                }
                try (Statement st = conn.createStatement()) {
                    st.execute("select pg_notify('clients_pgjdbc', 'hello from pgjdbc')");
                }
                PGNotification[] got = listener.unwrap(PGConnection.class).getNotifications((int) WAIT_MS);
                check(got != null && got.length == 1, "one notification");
                check("hello from pgjdbc".equals(got[0].getParameter()), got[0].getParameter());
                return "payload '" + got[0].getParameter() + "' from pid " + got[0].getPID()
                        + " via getNotifications(timeout)";
            }
        });

        run("cancel", () -> {
            String tag = "cancel-pgjdbc";
            try (Connection victim = connect(PORT); Statement st = victim.createStatement()) {
                CompletableFuture<Object> outcome = CompletableFuture.supplyAsync(() -> {
                    try {
                        st.execute("select pg_sleep(30) /* " + tag + " */");
                        return null;
                    } catch (SQLException e) {
                        return e;
                    }
                });
                long deadline = System.currentTimeMillis() + WAIT_MS;
                while ((Long) one(conn, runningQuerySql(tag)) != 1) {
                    check(System.currentTimeMillis() < deadline, "the query never ran");
                    Thread.sleep(10);
                }
                long sent = System.nanoTime();
                st.cancel();
                Object r = outcome.get(WAIT_MS, TimeUnit.MILLISECONDS);
                long took = System.nanoTime() - sent;
                check(r instanceof SQLException, "the query completed");
                SQLException e = (SQLException) r;
                check("57014".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState() + ": " + e.getMessage());
                return String.format("Statement.cancel(): SQLSTATE %s: %s, %.3fs after the request",
                        e.getSQLState(), e.getMessage(), took / 1e9);
            }
        });

        run("application_name", () -> {
            Object name = one(conn, "select application_name from pg_stat_activity where pid = pg_backend_pid()");
            check(APP.equals(name), String.valueOf(name));
            return "server sees '" + name + "'";
        });

        run("error_sqlstate", () -> {
            try {
                one(conn, "select 1/0");
            } catch (SQLException e) {
                check("22012".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState());
                check(Integer.valueOf(1).equals(one(conn, "select 1")), "connection usable");
                return "SQLSTATE " + e.getSQLState() + ": " + e.getMessage() + "; connection still usable";
            }
            throw new AssertionError("no error");
        });

        run("prepared statements across sessions", () -> {
            // Server-prepared statements are named S_1, S_2, ... per connection: through a pool
            // that reuses the server connection, one left over would collide (42P05).
            java.util.Set<Object> pids = new java.util.HashSet<>();
            for (int session = 0; session < 3; session++) {
                try (Connection c = connect(PORT)) {
                    try (PreparedStatement ps = c.prepareStatement("select ?::int + " + session + " /* pgjdbc-reuse */")) {
                        ps.unwrap(PGStatement.class).setPrepareThreshold(1);
                        for (int i = 0; i < 5; i++) {
                            ps.setInt(1, i);
                            try (ResultSet rs = ps.executeQuery()) {
                                rs.next();
                                check(rs.getInt(1) == i + session, "value");
                            }
                        }
                    }
                    pids.add(one(c, "select pg_backend_pid()"));
                }
            }
            return "3 sessions in a row, prepareThreshold=1 (server-prepared S_n), on " + pids.size()
                    + " server backend(s)";
        });

        run("sslmode=require (local TLS)", () -> {
            if (TLS_PORT == null || TLS_PORT.isEmpty()) {
                throw new Gap(env("CLIENTS_TLS_GAP", "the proxy has no local TLS listener"));
            }
            try (Connection c = connect(TLS_PORT, "sslmode", "require");
                    Statement st = c.createStatement();
                    ResultSet rs = st.executeQuery("select current_user::text")) {
                rs.next();
                check(USER.equals(rs.getString(1)), rs.getString(1));
            }
            return "sslmode=require to --client-tls self-signed (encrypted, certificate not verified)";
        });

        run("sslmode=require refused without local TLS", () -> {
            try (Connection c = connect(PORT, "sslmode", "require")) {
                throw new AssertionError("connected without TLS");
            } catch (SQLException e) {
                check("08004".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState() + ": " + e.getMessage());
                return "plain listener answers N, pgjdbc refuses: " + e.getMessage();
            }
        });

        conn.close();
        System.exit(failed ? 1 : 0);
    }
}
