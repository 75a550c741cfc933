// The quantized-weight module in one include: formats, packed matrices, kernels, the autograd
// linear op, embedding lookup and safetensors I/O.
#pragma once
#include "inference/quant/quant_embedding.h"
#include "inference/quant/quant_format.h"
#include "inference/quant/quant_io.h"
#include "inference/quant/quant_linear.h"
#include "inference/quant/quant_matmul.h"
#include "inference/quant/quantized_matrix.h"
