/*
 * emc_nn: emcgen's portable C99 implementation of part of the CMSIS-NN int8 API.
 *
 * Function declarations with the names and signatures of CMSIS-NN v7.0.0 (arm_convolve_s8 takes the
 * upscale_dims argument), so that generated dispatch code compiles unchanged against either library.
 * The results are bit-exact with CMSIS-NN and TFLite(-Micro) int8 reference kernels (default double
 * rounding, i.e. CMSIS_NN_USE_SINGLE_ROUNDING not defined).
 *
 * Conventions shared by all functions:
 *  - tensors are NHWC int8; input_offset = -input_zero_point, output_offset = +output_zero_point;
 *  - requantization: multiplier in Q31, shift > 0 is a left shift, shift < 0 a right shift (rounded, halves
 *    away from zero), then output_offset is added and the result clamped to activation [min, max];
 *  - padding holds the top/left padding only; the bottom/right remainder follows from output_dims;
 *  - bias may be NULL (no bias);
 *  - *_get_buffer_size() returns the scratch bytes emc_nn needs for those arguments. It is never more than
 *    real CMSIS-NN asks for on a Cortex-M4 (DSP) build, so a buffer sized for CMSIS-NN also fits emc_nn.
 */
#ifndef ARM_NNFUNCTIONS_H
#define ARM_NNFUNCTIONS_H

#include "arm_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Convolution ------------------------------------------------------------------------------------- */

/* Convolution, choosing the kernel from the arguments (1x1 without padding needs no scratch).
 * filter_dims = {C_OUT, KH, KW, C_IN / groups} (OHWI); bias_dims = {1, 1, 1, C_OUT};
 * output_dims = {N, OH, OW, C_OUT}. */
arm_cmsis_nn_status arm_convolve_wrapper_s8(const cmsis_nn_context *ctx,
                                            const cmsis_nn_conv_params *conv_params,
                                            const cmsis_nn_per_channel_quant_params *quant_params,
                                            const cmsis_nn_dims *input_dims,
                                            const int8_t *input_data,
                                            const cmsis_nn_dims *filter_dims,
                                            const int8_t *filter_data,
                                            const cmsis_nn_dims *bias_dims,
                                            const int32_t *bias_data,
                                            const cmsis_nn_dims *output_dims,
                                            int8_t *output_data);

int32_t arm_convolve_wrapper_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                                const cmsis_nn_dims *input_dims,
                                                const cmsis_nn_dims *filter_dims,
                                                const cmsis_nn_dims *output_dims);

/* General convolution: any kernel, stride, padding, dilation; grouped when filter_dims->c < input_dims->c.
 * Needs a scratch buffer (returns ARM_CMSIS_NN_ARG_ERROR when ctx->buf is NULL). upscale_dims is NULL for
 * a plain convolution; {.h = 2} / {.w = 2} reads the input as if zeros were inserted after every row /
 * column (input_dims then gives the upscaled size), as CMSIS-NN's transpose convolution uses it. */
arm_cmsis_nn_status arm_convolve_s8(const cmsis_nn_context *ctx,
                                    const cmsis_nn_conv_params *conv_params,
                                    const cmsis_nn_per_channel_quant_params *quant_params,
                                    const cmsis_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const cmsis_nn_dims *filter_dims,
                                    const int8_t *filter_data,
                                    const cmsis_nn_dims *bias_dims,
                                    const int32_t *bias_data,
                                    const cmsis_nn_dims *upscale_dims,
                                    const cmsis_nn_dims *output_dims,
                                    int8_t *output_data);

int32_t arm_convolve_s8_get_buffer_size(const cmsis_nn_dims *input_dims, const cmsis_nn_dims *filter_dims);

/* 1x1 convolution without padding and dilation, any stride; no scratch. */
arm_cmsis_nn_status arm_convolve_1x1_s8(const cmsis_nn_context *ctx,
                                        const cmsis_nn_conv_params *conv_params,
                                        const cmsis_nn_per_channel_quant_params *quant_params,
                                        const cmsis_nn_dims *input_dims,
                                        const int8_t *input_data,
                                        const cmsis_nn_dims *filter_dims,
                                        const int8_t *filter_data,
                                        const cmsis_nn_dims *bias_dims,
                                        const int32_t *bias_data,
                                        const cmsis_nn_dims *output_dims,
                                        int8_t *output_data);

/* 1x1 convolution, stride 1, no padding; no scratch. */
arm_cmsis_nn_status arm_convolve_1x1_s8_fast(const cmsis_nn_context *ctx,
                                             const cmsis_nn_conv_params *conv_params,
                                             const cmsis_nn_per_channel_quant_params *quant_params,
                                             const cmsis_nn_dims *input_dims,
                                             const int8_t *input_data,
                                             const cmsis_nn_dims *filter_dims,
                                             const int8_t *filter_data,
                                             const cmsis_nn_dims *bias_dims,
                                             const int32_t *bias_data,
                                             const cmsis_nn_dims *output_dims,
                                             int8_t *output_data);

int32_t arm_convolve_1x1_s8_fast_get_buffer_size(const cmsis_nn_dims *input_dims);

/* 1xN convolution (input height 1); same scratch as arm_convolve_s8. */
arm_cmsis_nn_status arm_convolve_1_x_n_s8(const cmsis_nn_context *ctx,
                                          const cmsis_nn_conv_params *conv_params,
                                          const cmsis_nn_per_channel_quant_params *quant_params,
                                          const cmsis_nn_dims *input_dims,
                                          const int8_t *input_data,
                                          const cmsis_nn_dims *filter_dims,
                                          const int8_t *filter_data,
                                          const cmsis_nn_dims *bias_dims,
                                          const int32_t *bias_data,
                                          const cmsis_nn_dims *output_dims,
                                          int8_t *output_data);

int32_t arm_convolve_1_x_n_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                              const cmsis_nn_dims *input_dims,
                                              const cmsis_nn_dims *filter_dims,
                                              const cmsis_nn_dims *output_dims);

/* ---- Depthwise convolution --------------------------------------------------------------------------- */

/* Depthwise convolution. filter_dims = {1, KH, KW, C_OUT} (1HWC) with C_OUT = C_IN * ch_mult; output channel
 * oc reads input channel oc / ch_mult. */
arm_cmsis_nn_status arm_depthwise_conv_wrapper_s8(const cmsis_nn_context *ctx,
                                                  const cmsis_nn_dw_conv_params *dw_conv_params,
                                                  const cmsis_nn_per_channel_quant_params *quant_params,
                                                  const cmsis_nn_dims *input_dims,
                                                  const int8_t *input_data,
                                                  const cmsis_nn_dims *filter_dims,
                                                  const int8_t *filter_data,
                                                  const cmsis_nn_dims *bias_dims,
                                                  const int32_t *bias_data,
                                                  const cmsis_nn_dims *output_dims,
                                                  int8_t *output_data);

int32_t arm_depthwise_conv_wrapper_s8_get_buffer_size(const cmsis_nn_dw_conv_params *dw_conv_params,
                                                      const cmsis_nn_dims *input_dims,
                                                      const cmsis_nn_dims *filter_dims,
                                                      const cmsis_nn_dims *output_dims);

/* General depthwise convolution (any ch_mult, dilation, batch); no scratch. */
arm_cmsis_nn_status arm_depthwise_conv_s8(const cmsis_nn_context *ctx,
                                          const cmsis_nn_dw_conv_params *dw_conv_params,
                                          const cmsis_nn_per_channel_quant_params *quant_params,
                                          const cmsis_nn_dims *input_dims,
                                          const int8_t *input_data,
                                          const cmsis_nn_dims *filter_dims,
                                          const int8_t *filter_data,
                                          const cmsis_nn_dims *bias_dims,
                                          const int32_t *bias_data,
                                          const cmsis_nn_dims *output_dims,
                                          int8_t *output_data);

/* ---- Fully connected --------------------------------------------------------------------------------- */

/* Fully connected, per-tensor requantization. Each of input_dims->n rows has filter_dims->n elements
 * (the accumulation depth); output_dims->c outputs per row; weights row-major [C_OUT][accumulation depth]. */
arm_cmsis_nn_status arm_fully_connected_s8(const cmsis_nn_context *ctx,
                                           const cmsis_nn_fc_params *fc_params,
                                           const cmsis_nn_per_tensor_quant_params *quant_params,
                                           const cmsis_nn_dims *input_dims,
                                           const int8_t *input_data,
                                           const cmsis_nn_dims *filter_dims,
                                           const int8_t *filter_data,
                                           const cmsis_nn_dims *bias_dims,
                                           const int32_t *bias_data,
                                           const cmsis_nn_dims *output_dims,
                                           int8_t *output_data);

int32_t arm_fully_connected_s8_get_buffer_size(const cmsis_nn_dims *filter_dims);

/* ---- Pooling ----------------------------------------------------------------------------------------- */

/* Max pooling over filter_dims->h x filter_dims->w windows, then clamp to activation; ctx is not used.
 * Input and output must not overlap. */
arm_cmsis_nn_status arm_max_pool_s8(const cmsis_nn_context *ctx,
                                    const cmsis_nn_pool_params *pool_params,
                                    const cmsis_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const cmsis_nn_dims *filter_dims,
                                    const cmsis_nn_dims *output_dims,
                                    int8_t *output_data);

/* Average pooling over the non-padded cells of each window, rounded half away from zero, then clamped. */
arm_cmsis_nn_status arm_avgpool_s8(const cmsis_nn_context *ctx,
                                   const cmsis_nn_pool_params *pool_params,
                                   const cmsis_nn_dims *input_dims,
                                   const int8_t *input_data,
                                   const cmsis_nn_dims *filter_dims,
                                   const cmsis_nn_dims *output_dims,
                                   int8_t *output_data);

int32_t arm_avgpool_s8_get_buffer_size(const int dim_dst_width, const int ch_src);

/* ---- Elementwise ------------------------------------------------------------------------------------- */

/* out = clamp(requant(requant((a + off1) << left_shift, m1, s1) + requant((b + off2) << left_shift, m2, s2),
 *                     out_mult, out_shift) + out_offset), element by element over block_size elements.
 * TFLite uses left_shift 20 and input shifts <= 0. No broadcasting. */
arm_cmsis_nn_status arm_elementwise_add_s8(const int8_t *input_1_vect,
                                           const int8_t *input_2_vect,
                                           const int32_t input_1_offset,
                                           const int32_t input_1_mult,
                                           const int32_t input_1_shift,
                                           const int32_t input_2_offset,
                                           const int32_t input_2_mult,
                                           const int32_t input_2_shift,
                                           const int32_t left_shift,
                                           int8_t *output,
                                           const int32_t out_offset,
                                           const int32_t out_mult,
                                           const int32_t out_shift,
                                           const int32_t out_activation_min,
                                           const int32_t out_activation_max,
                                           const int32_t block_size);

/* out = clamp(requant((a + off1) * (b + off2), out_mult, out_shift) + out_offset). No broadcasting. */
arm_cmsis_nn_status arm_elementwise_mul_s8(const int8_t *input_1_vect,
                                           const int8_t *input_2_vect,
                                           const int32_t input_1_offset,
                                           const int32_t input_2_offset,
                                           int8_t *output,
                                           const int32_t out_offset,
                                           const int32_t out_mult,
                                           const int32_t out_shift,
                                           const int32_t out_activation_min,
                                           const int32_t out_activation_max,
                                           const int32_t block_size);

/* ---- Softmax ----------------------------------------------------------------------------------------- */

/* Softmax of num_rows contiguous rows of row_size elements; output scale 1/256, zero point -128.
 * mult/shift scale (x - row max) to Q5.26 (shift >= 0); differences below diff_min give -128. */
void arm_softmax_s8(const int8_t *input,
                    const int32_t num_rows,
                    const int32_t row_size,
                    const int32_t mult,
                    const int32_t shift,
                    const int32_t diff_min,
                    int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* ARM_NNFUNCTIONS_H */
