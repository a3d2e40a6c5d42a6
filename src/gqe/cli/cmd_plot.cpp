// gqe plot: loss curves of one or more training runs (metrics.jsonl) to a PNG, drawn by gnuplot.
//   gqe plot RUN_DIR|metrics.jsonl [...] --out curves.png [--labels a,b] [--smooth 0.9] [--title T]
// Top panel: training loss (EMA-smoothed lines) and validation loss (points) per run, against tokens
// seen; bottom panel: learning rate and gradient norm (clipped steps marked).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/gnuplot.h"
#include "gqe/core/json.h"

namespace gqe::cli {

namespace {

struct Series {
  std::map<int64_t, nlohmann::json> train, val;  // by step; the last record of a step wins (resumed runs)
};

Series read_metrics(const std::string& path) {
  fs::check_regular_file(path);
  std::ifstream f(path);
  if (!f) throw Error(path + ": cannot open metrics log");
  Series s;
  std::string line;
  int64_t n = 0;
  while (std::getline(f, line)) {
    ++n;
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = parse_json(line, path);
    } catch (const JsonError&) {
      // The last line of a killed run may be cut short: skip it, reject damage elsewhere.
      if (f.peek() == EOF) break;
      throw FormatError(path + ": line " + std::to_string(n) + " is not JSON");
    }
    const std::string where = path + ": line " + std::to_string(n);
    if (!j.is_object() || !j.contains("type")) throw FormatError(where + ": no 'type'");
    (j["type"] == "val" ? s.val : s.train)[json_integer<int64_t>(j, "step", where)] = j;
  }
  if (s.train.empty()) throw FormatError(path + ": no training records");
  return s;
}

std::string quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o.push_back('\\');
    o.push_back(c);
  }
  return o + "\"";
}

double num(const nlohmann::json& j, const char* k) {
  return j.contains(k) && j[k].is_number() ? j[k].get<double>() : NAN;
}

}  // namespace

int cmd_plot(int argc, char** argv) {
  Args args("plot", argc, argv, {"out", "labels", "smooth", "title", "width", "height"}, {"help"},
            Positionals::any("RUN_DIR"));
  if (args.flag("help") || args.positional().empty()) {
    std::cout << "usage: gqe plot RUN_DIR|metrics.jsonl [...] --out curves.png [--labels a,b] [--smooth 0.9]\n"
                 "                [--title TEXT] [--width 1000] [--height 800]\n"
                 "Training loss (EMA-smoothed, weight --smooth) and validation loss against tokens, and the\n"
                 "learning rate and gradient norm, for each run. Needs the gnuplot program.\n";
    return args.flag("help") ? 0 : 2;
  }
  const std::string out = args.require("out");
  const double smooth = args.get_double("smooth", 0.9);
  if (!(smooth >= 0 && smooth < 1)) throw Error("gqe plot: --smooth expects a number in [0, 1)");
  std::vector<std::string> labels;
  {
    std::stringstream ss(args.get("labels", ""));
    std::string l;
    while (std::getline(ss, l, ',')) labels.push_back(l);
  }
  const std::string terminal = gnuplot_png_terminal();
  if (terminal.empty()) throw Error("gqe plot: the gnuplot program is not installed (Debian: apt-get install gnuplot-nox)");

  char tmpl[] = "/tmp/gqe-plot-XXXXXX";
  if (!mkdtemp(tmpl)) throw Error("gqe plot: cannot create a temporary directory");
  const std::string tmp = tmpl;
  std::string loss_plot, aux_plot;
  const auto& inputs = args.positional();
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::string path = inputs[i];
    if (fs::is_directory(path)) path += "/metrics.jsonl";
    Series s = read_metrics(path);
    const std::string label = i < labels.size() ? labels[i] : inputs[i];
    const std::string tf = tmp + "/train" + std::to_string(i) + ".dat", vf = tmp + "/val" + std::to_string(i) + ".dat";
    std::ofstream t(tf), v(vf);
    double ema = NAN;
    for (const auto& [step, j] : s.train) {
      const double loss = num(j, "loss");
      if (std::isfinite(loss)) ema = std::isnan(ema) ? loss : smooth * ema + (1 - smooth) * loss;
      t << step << ' ' << num(j, "tokens") << ' ' << ema << ' ' << num(j, "lr") << ' ' << num(j, "grad_norm") << ' '
        << (j.value("clipped", false) ? num(j, "grad_norm") : NAN) << '\n';
    }
    for (const auto& [step, j] : s.val) {
      const auto it = s.train.find(step);
      v << step << ' ' << (it != s.train.end() ? num(it->second, "tokens") : NAN) << ' ' << num(j, "val_loss") << '\n';
    }
    const std::string lt = "lt " + std::to_string(i + 1);
    loss_plot += std::string(loss_plot.empty() ? "" : ", ") + quote(tf) + " using 2:3 with lines " + lt +
                 " title " + quote(label + " train");
    if (!s.val.empty())
      loss_plot += ", " + quote(vf) + " using 2:3 with linespoints " + lt + " pt 7 dt 2 title " + quote(label + " val");
    aux_plot += std::string(aux_plot.empty() ? "" : ", ") + quote(tf) + " using 2:5 with lines " + lt +
                " title " + quote(label + " grad norm") + ", " + quote(tf) + " using 2:6 with points " + lt +
                " pt 2 notitle, " + quote(tf) + " using 2:4 axes x1y2 with lines " + lt + " dt 3 title " +
                quote(label + " lr");
  }
  std::ostringstream g;
  g << "set terminal " << terminal << " size " << args.get_int("width", 1000) << "," << args.get_int("height", 800) << "\n"
    << "set output " << quote(out + ".tmp.png") << "\n"
    << "set datafile missing 'nan'\nset grid\nset key top right\n"
    << "set multiplot layout 2,1 title " << quote(args.get("title", "gqe training")) << "\n"
    << "set ylabel 'loss (nats/token)'\nset xlabel 'tokens'\nplot " << loss_plot << "\n"
    << "set ylabel 'gradient norm'\nset y2label 'learning rate'\nset y2tics\nset logscale y\nplot " << aux_plot << "\n"
    << "unset multiplot\n";
  const std::string script = tmp + "/plot.gp";
  std::ofstream(script) << g.str();
  try {
    run_gnuplot(script, PlotNeed::kRequired);  // the picture is what was asked for: a failure is an error
  } catch (const Error&) {
    fs::remove_tree(tmp);
    std::remove((out + ".tmp.png").c_str());
    throw;
  }
  fs::remove_tree(tmp);
  if (std::rename((out + ".tmp.png").c_str(), out.c_str()) != 0) throw Error(out + ": cannot write the plot");
  std::cout << "wrote " << out << "\n";
  return 0;
}

}  // namespace gqe::cli
