/*
 * emc_nn: emcgen's portable C99 implementation of part of the CMSIS-NN int8 API.
 *
 * Types of the CMSIS-NN public API (pinned to CMSIS-NN v7.0.0). The type names, field names and field
 * order are those of CMSIS-NN, so that the C code emcgen generates (brace initialisers included) compiles
 * unchanged against either emc_nn or the real CMSIS-NN. The include guard is CMSIS-NN's too, so only one
 * definition is seen if both header sets end up on the include path.
 */
#ifndef ARM_NN_TYPES_H
#define ARM_NN_TYPES_H

#include <stdbool.h>
#include <stdint.h>

/* Defined only by emc_nn's headers: lets code tell which library's headers it was compiled against. */
#define EMC_NN_HEADERS 1

/* Return codes of the arm_* functions. */
typedef enum
{
    ARM_CMSIS_NN_SUCCESS = 0,
    ARM_CMSIS_NN_ARG_ERROR = -1,
    ARM_CMSIS_NN_NO_IMPL_ERROR = -2,
    ARM_CMSIS_NN_FAILURE = -3,
} arm_cmsis_nn_status;

/* A 2-D size: width first (a brace initialiser is {w, h}). Used for stride, padding and dilation. */
typedef struct
{
    int32_t w;
    int32_t h;
} cmsis_nn_tile;

/* Caller-owned scratch memory: size from the matching *_get_buffer_size(); buf may be NULL if size is 0. */
typedef struct
{
    void *buf;
    int32_t size;
} cmsis_nn_context;

/* Tensor dimensions, NHWC. What n and c mean depends on the function (see arm_nnfunctions.h). */
typedef struct
{
    int32_t n;
    int32_t h;
    int32_t w;
    int32_t c;
} cmsis_nn_dims;

/* Per-output-channel requantization: arrays of C_OUT entries (only read, but non-const as in CMSIS-NN). */
typedef struct
{
    int32_t *multiplier;
    int32_t *shift;
} cmsis_nn_per_channel_quant_params;

/* Per-tensor requantization. */
typedef struct
{
    int32_t multiplier;
    int32_t shift;
} cmsis_nn_per_tensor_quant_params;

/* Clamp range of the result, in the output's quantized domain. */
typedef struct
{
    int32_t min;
    int32_t max;
} cmsis_nn_activation;

/* Convolution. input_offset = -input_zero_point; output_offset = +output_zero_point (it is added after
 * requantization); padding holds the top/left padding only. */
typedef struct
{
    int32_t input_offset;
    int32_t output_offset;
    cmsis_nn_tile stride;
    cmsis_nn_tile padding;
    cmsis_nn_tile dilation;
    cmsis_nn_activation activation;
} cmsis_nn_conv_params;

/* Depthwise convolution: C_OUT = C_IN * ch_mult; offsets and padding as for cmsis_nn_conv_params. */
typedef struct
{
    int32_t input_offset;
    int32_t output_offset;
    int32_t ch_mult;
    cmsis_nn_tile stride;
    cmsis_nn_tile padding;
    cmsis_nn_tile dilation;
    cmsis_nn_activation activation;
} cmsis_nn_dw_conv_params;

/* Pooling: padding holds the top/left padding only. */
typedef struct
{
    cmsis_nn_tile stride;
    cmsis_nn_tile padding;
    cmsis_nn_activation activation;
} cmsis_nn_pool_params;

/* Fully connected: filter_offset = -filter_zero_point (0 for TFLite's symmetric weights). */
typedef struct
{
    int32_t input_offset;
    int32_t filter_offset;
    int32_t output_offset;
    cmsis_nn_activation activation;
} cmsis_nn_fc_params;

#endif /* ARM_NN_TYPES_H */
