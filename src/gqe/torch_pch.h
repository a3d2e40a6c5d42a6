// Precompiled header for the gqe targets: the libtorch headers every torch-using file needs.
// Kept deliberately to the C++ API shared by libtorch 1.13 (Debian) and 2.x.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
