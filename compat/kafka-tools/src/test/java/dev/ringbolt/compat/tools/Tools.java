package dev.ringbolt.compat.tools;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.apache.kafka.common.utils.Exit;

/**
 * Runs Kafka's command-line tools in this JVM, as `bin/kafka-*.sh` runs them in their own: the same
 * main class with the same arguments (bin/kafka-run-class.sh adds nothing but the classpath and JVM
 * options). One JVM for every command keeps the suite fast: a JVM start and the tools' class
 * loading cost about 1.5 s per command on a 2-core machine, and the suite runs about seventy
 * commands, in about 10 s all told this way instead of about two minutes.
 *
 * <p>The tools end with {@code Exit.exit(code)} (Kafka's own indirection over System.exit, which its
 * tests replace the same way): here the first call records the exit status, silences stdout and
 * stderr (a real exit would end the process there) and throws {@link ToolExit} to unwind; a tool
 * that catches it (TopicCommand's mainNoExit catches Throwable) and exits again does not change the
 * recorded status. stdout and stderr are captured per command (the tools print with System.out/err
 * at the time of the call); commands run one at a time.
 */
final class Tools {
  static final String BOOTSTRAP = System.getProperty("bootstrap", "127.0.0.1:9092");

  /** A tool's main method. */
  @FunctionalInterface
  interface Main {
    void main(String[] args) throws Exception;
  }

  /** What a command printed and its exit status. */
  record Result(String command, int code, String out, String err) {
    /** The command, its status and both streams, for assertion messages. */
    String show() {
      return "$ " + command + "\n[exit " + code + "]\n" + out + (err.isEmpty() ? "" : "[stderr]\n" + err);
    }

    List<String> lines() {
      return Arrays.stream(out.split("\n")).map(String::stripTrailing).filter(l -> !l.isBlank()).toList();
    }
  }

  static final class ToolExit extends RuntimeException {
    final int code;

    ToolExit(int code, String message) {
      super("exit " + code + (message == null ? "" : ": " + message), null, false, false);
      this.code = code;
    }
  }

  /** The status of the first Exit.exit of the running command, or null. */
  private static Integer exited;

  private static final PrintStream DISCARD = new PrintStream(java.io.OutputStream.nullOutputStream());

  private static void exit(int code, String message) {
    synchronized (Tools.class) {
      if (exited == null) {
        exited = code;
        System.setOut(DISCARD);
        System.setErr(DISCARD);
      }
    }
    throw new ToolExit(code, message);
  }

  static {
    Exit.setExitProcedure(Tools::exit);
    Exit.setHaltProcedure(Tools::exit);
  }

  private Tools() {}

  static String unique(String prefix) {
    return prefix + "-" + System.currentTimeMillis() % 100_000_000 + "-" + UUID.randomUUID().toString().substring(0, 6);
  }

  static synchronized Result run(String script, Main main, String... args) {
    String command = script + " " + String.join(" ", args);
    PrintStream out0 = System.out;
    PrintStream err0 = System.err;
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int code;
    exited = null;
    try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
        PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
      System.setOut(o);
      System.setErr(e);
      try {
        main.main(args);
        code = exited != null ? exited : 0;
      } catch (Throwable t) {
        if (exited != null) {
          code = exited;
        } else {
          t.printStackTrace(e);
          code = 255;
        }
      } finally {
        System.setOut(out0);
        System.setErr(err0);
      }
    }
    Result r = new Result(command, code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    // The command and its status only: a failed check shows the whole output in its message.
    out0.println("$ " + command + "   [exit " + code + ", " + r.lines().size() + " lines]");
    return r;
  }

  static Result topics(String... args) {
    return run("kafka-topics.sh", org.apache.kafka.tools.TopicCommand::main, withBootstrap(args));
  }

  static Result configs(String... args) {
    return run("kafka-configs.sh", kafka.admin.ConfigCommand::main, withBootstrap(args));
  }

  static Result deleteRecords(String... args) {
    return run("kafka-delete-records.sh", org.apache.kafka.tools.DeleteRecordsCommand::main, withBootstrap(args));
  }

  static Result logDirs(String... args) {
    return run("kafka-log-dirs.sh", org.apache.kafka.tools.LogDirsCommand::main, withBootstrap(args));
  }

  static Result consumerGroups(String... args) {
    return run("kafka-consumer-groups.sh", org.apache.kafka.tools.consumer.group.ConsumerGroupCommand::main, withBootstrap(args));
  }

  static Result getOffsets(String... args) {
    return run("kafka-get-offsets.sh", org.apache.kafka.tools.GetOffsetShell::main, withBootstrap(args));
  }

  static Result transactions(String... args) {
    return run("kafka-transactions.sh", org.apache.kafka.tools.TransactionsCommand::main, withBootstrap(args));
  }

  static String[] withBootstrap(String... args) {
    List<String> all = new ArrayList<>(List.of("--bootstrap-server", BOOTSTRAP));
    all.addAll(List.of(args));
    return all.toArray(String[]::new);
  }

  /**
   * The rows of the first table in a tool's output whose header starts with `firstColumn`: a map
   * from column name to value per row. The tools print tables with one printf width per column,
   * the same for the header and the rows, so a column's value is the text under its header, up to
   * the next header (an empty value, e.g. a HOST the broker did not report, is ""). "COORDINATOR
   * (ID)" is one column.
   */
  static List<Map<String, String>> table(Result r, String firstColumn) {
    List<Map<String, String>> rows = new ArrayList<>();
    List<String> names = null;
    List<Integer> starts = null;
    for (String line : r.out().split("\n")) {
      if (names == null) {
        String h = line.replace("COORDINATOR (ID)", "COORDINATOR_(ID)");
        if (!h.startsWith(firstColumn + " ")) {
          continue;
        }
        names = new ArrayList<>();
        starts = new ArrayList<>();
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\S+").matcher(h);
        while (m.find()) {
          names.add(m.group().replace("COORDINATOR_(ID)", "COORDINATOR (ID)"));
          starts.add(m.start());
        }
        continue;
      }
      if (line.isBlank()) {
        break;
      }
      Map<String, String> row = new HashMap<>();
      for (int i = 0; i < names.size(); i++) {
        int from = Math.min(starts.get(i), line.length());
        int to = i + 1 < names.size() ? Math.min(starts.get(i + 1), line.length()) : line.length();
        row.put(names.get(i), line.substring(from, to).trim());
      }
      rows.add(row);
    }
    return rows;
  }
}
