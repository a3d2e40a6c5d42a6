// One function per `gqe` subcommand; argv excludes the program and subcommand names.
#pragma once

namespace gqe::cli {
int cmd_info(int argc, char** argv);
int cmd_env(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_bench(int argc, char** argv);  // gqe bench: GQA vs GQE latency
int cmd_tokenizer(int argc, char** argv);  // gqe tokenizer train
int cmd_tokenizer_bench(int argc, char** argv);  // gqe tokenizer bench: encoding MB/s
int cmd_data(int argc, char** argv);       // gqe data prepare
int cmd_eval(int argc, char** argv);
int cmd_routes(int argc, char** argv);
int cmd_plot(int argc, char** argv);
int cmd_export(int argc, char** argv);      // gqe export --format hf: a Hugging Face transformers folder
int cmd_import(int argc, char** argv);      // gqe import: such a folder back into a checkpoint
int cmd_serve(int argc, char** argv);       // gqe serve: an OpenAI-compatible HTTP server
}  // namespace gqe::cli
