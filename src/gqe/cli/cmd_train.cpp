// gqe train: language-model training with the paper's recipe (src/gqe/train/), on a text file (byte
// tokens) or token shards, in one process or data-parallel over several (torchrun-style environment).
#include <iostream>

#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/cli/schedule_flags.h"
#include "gqe/train/job.h"
#include "gqe/train/recipe.h"

namespace gqe::cli {

namespace {

const char* kHelp =
    "usage: gqe train --config MODEL.json (--data TEXT_FILE | --train-shards GLOB[,..]) --out DIR [options]\n"
    "data:\n"
    "  --data FILE            a text file, encoded with --tokenizer (bytes); the last 5% is validation\n"
    "  --train-shards LIST    token shards (gqe or llm.c .bin); comma-separated paths or globs\n"
    "  --val-shards LIST      validation shards (default: none, or the text tail with --data)\n"
    "  --train-tokens N       train on the shards' first N tokens only (a data-limited run: each epoch\n"
    "                         repeats them; default: all)\n"
    "  --tokenizer PATH       bytes, a SentencePiece .model, a Hugging Face tokenizer.json or GPT-2's\n"
    "                         vocab.json + merges.txt: encodes --data, is recorded in DIR for generate/eval\n"
    "                         (default: bytes with --data, the shards' meta.json tokenizer with shards)\n"
    "recipe (defaults, then --recipe FILE, then these flags; see docs/training.md):\n"
    "  --recipe FILE          configs/recipe-*.json\n"
    "  --steps N (300)  --tokens N (total tokens instead of steps)\n"
    "  --batch B (16, sequences per rank per micro-step)  --seq T (128)\n"
    "  --global-batch TOKENS  tokens per optimizer step over all ranks (gradient accumulation)\n"
    "  --lr X (3e-3 peak)  --min-lr X (lr/10)  --warmup N (10% of steps)  --decay-fraction X (0.2)\n"
    "  --decay-shape linear|cosine|sqrt  --weight-decay X (0.1)  --clip X (absolute norm cap, 0 = none)\n"
    "  --no-zclip  --loss-spike-z X (6; 0 = off)  --precision auto|fp32|bf16  --seed N (1234)\n"
    "  --data-seed N (the data order's own seed; default: --seed, which then sets both)\n"
    "run:\n"
    "  --log-every N (10)  --eval-every N (100)  --eval-batches N (4)  --save-every N (0: at the end)\n"
    "  --keep K (3 checkpoints)  --resume DIR|auto  --stop-at N (stop after step N; resume later)\n"
    "  --overwrite            start over in an --out that holds a run: deletes its checkpoints, metrics,\n"
    "                         model and recorded tokenizer first (without it, such an --out is refused)\n"
    "  --allow-nonfinite-weights (resume from NaN/Inf weights anyway)\n"
    "  --ignore-memory-check (train even when the memory estimate exceeds what is available)\n"
    "  --threads N (cores / local ranks)  --device cpu|cuda  --dist-timeout SECONDS (300)\n"
    "  --sample-tokens N (200)  --sample-prompt TEXT (\"And God said\")\n"
    "distributed: set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (torchrun does), e.g.\n"
    "  torchrun --no-python --nproc-per-node=2 gqe train ...   (rank 0 writes logs and checkpoints)\n"
    "Writes DIR/metrics.jsonl, DIR/checkpoints/step-*/ (resumable) and DIR/config.json + model.safetensors.\n"
    "SIGTERM or SIGINT: the step in progress is finished and checkpointed on all ranks, then the run exits\n"
    "with 128 + the signal (143, 130) and says how to resume; another signal a second or more later exits\n"
    "at once (the last complete checkpoint stays).\n";

}  // namespace

int cmd_train(int argc, char** argv) {
  Args args("train", argc, argv,
            {"config", "data", "train-shards", "val-shards", "train-tokens", "tokenizer", "out", "recipe", "steps", "tokens", "batch",
             "seq", "global-batch", "lr", "min-lr", "warmup", "decay-fraction", "decay-shape", "weight-decay", "clip",
             "loss-spike-z", "precision", "seed", "data-seed", "threads", "log-every", "eval-every", "eval-batches", "save-every",
             "keep", "resume", "stop-at", "device", "dist-timeout", "sample-tokens", "sample-prompt"},
            {"help", "no-zclip", "allow-nonfinite-weights", "ignore-memory-check", "overwrite"});
  if (args.flag("help")) {
    std::cout << kHelp;
    return 0;
  }
  TrainJobOptions o;
  o.config_path = args.require("config");
  // Recipe: defaults < --recipe file < flags.
  TrainRecipe r;
  std::string source = "command line";
  if (args.has("recipe")) {
    r = load_recipe(args.require("recipe"));
    source = args.require("recipe") + " + command line";
  }
  if (args.has("steps")) {
    r.schedule.total_steps = args.get_int("steps", 0);
    r.total_tokens = 0;
  }
  // A token budget whose step count fits an int64 many times over (1e15 tokens is ~1000 times the paper's run).
  if (args.has("tokens")) r.total_tokens = args.get_positive_double("tokens", 0, 1e15);
  r.micro_batch = args.get_int("batch", r.micro_batch);
  r.seq_len = args.get_int("seq", r.seq_len);
  r.global_batch_tokens = args.get_int("global-batch", r.global_batch_tokens);
  apply_schedule_flags(args, r, args.has("recipe"));
  r.adamw.weight_decay = args.get_double("weight-decay", r.adamw.weight_decay);
  r.zclip.max_norm = args.get_double("clip", r.zclip.max_norm);
  if (args.flag("no-zclip")) r.zclip.enabled = false;
  r.loss_spike_z = args.get_double("loss-spike-z", r.loss_spike_z);
  r.precision = args.get_enum("precision", r.precision);
  r.seed = uint64_t(args.get_int("seed", int64_t(r.seed)));
  r.data_seed = args.get_int("data-seed", r.data_seed, 0);
  r.log_every = args.get_int("log-every", r.log_every);
  r.eval_every = args.get_int("eval-every", r.eval_every);
  r.eval_batches = args.get_int("eval-batches", r.eval_batches);
  r.save_every = args.get_int("save-every", r.save_every);
  r.keep_checkpoints = args.get_int("keep", r.keep_checkpoints);
  o.recipe = r;
  o.recipe_source = source;
  o.text_path = args.get("data", "");
  o.train_shards = args.get("train-shards", "");
  o.val_shards = args.get("val-shards", "");
  o.train_tokens = args.get_int("train-tokens", 0, 1);
  o.tokenizer = args.get("tokenizer", "");
  o.out_dir = args.require("out");
  o.threads = int(args.get_int("threads", 0));
  o.device = args.get("device", "cpu");
  o.dist_timeout_seconds = args.get_positive_double("dist-timeout", 300, 1e6);
  o.resume = args.get("resume", "");
  o.overwrite = args.flag("overwrite");
  o.allow_nonfinite_weights = args.flag("allow-nonfinite-weights");
  o.ignore_memory_check = args.flag("ignore-memory-check");
  o.stop_at = args.get_int("stop-at", -1);
  o.sample_tokens = args.get_int("sample-tokens", 200);
  o.sample_prompt = args.get("sample-prompt", "And God said");
  TrainJob job(std::move(o));
  return job.run();
}

}  // namespace gqe::cli
