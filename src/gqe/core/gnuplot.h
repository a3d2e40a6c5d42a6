// The one way gqe runs gnuplot. Pictures are drawn by the external gnuplot program from a script file
// the caller wrote; the data files beside it are the real output and stay whether or not a picture comes.
#pragma once
#include <string>

namespace gqe {

// kOptional: the picture is a by-product (bench, routes): a missing gnuplot or a
// gnuplot error is a warning on stderr. kRequired: the picture is what was asked for (gqe plot): the same
// problems throw gqe::Error.
enum class PlotNeed { kOptional, kRequired };

// Runs gnuplot on the script file `script`; true when it succeeded. gnuplot's own error output is shown
// (in the warning or in the Error's message) together with the script's path.
bool run_gnuplot(const std::string& script, PlotNeed need);

// The PNG terminal to ask for: "pngcairo" (anti-aliased, dashed lines) where this gnuplot has it, else
// libgd's "png", which every gnuplot has. "" when gnuplot is not installed.
std::string gnuplot_png_terminal();

}  // namespace gqe
