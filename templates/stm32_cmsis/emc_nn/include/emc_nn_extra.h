/*
 * emc_nn extra operations: small int8 kernels emcgen needs that CMSIS-NN does not have (or that are too
 * simple to need it), with TFLite(-Micro) reference semantics.
 *
 * emc_nn_extra.c is compiled into every generated project, also when it links the real CMSIS-NN: it uses
 * only the types of arm_nn_types.h (which CMSIS-NN provides too), calls no arm_* function and defines only
 * emc_nn_* symbols.
 */
#ifndef EMC_NN_EXTRA_H
#define EMC_NN_EXTRA_H

#include <stdbool.h>
#include <stdint.h>

#include "arm_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Constant padding of the H and W dimensions of an NHWC tensor (TFLite PAD / PADV2 on H, W).
 * Output dims: {n, h + pad_top + pad_bottom, w + pad_left + pad_right, c}. pad_value is in the quantized
 * domain (TFLite PAD pads with the zero point). Returns ARM_CMSIS_NN_ARG_ERROR for a negative padding. */
arm_cmsis_nn_status emc_nn_pad_s8(const int8_t *input,
                                  const cmsis_nn_dims *input_dims,
                                  int32_t pad_top,
                                  int32_t pad_bottom,
                                  int32_t pad_left,
                                  int32_t pad_right,
                                  int8_t pad_value,
                                  int8_t *output);

/* One input of a concatenation along the channel (last) axis (TFLite CONCATENATION on axis -1, equal
 * quantization of inputs and output): copies outer_size rows of input_channels values into the output,
 * whose rows have output_channels values, starting at channel channel_offset. Call once per input. */
void emc_nn_concat_s8(const int8_t *input,
                      int32_t outer_size,
                      int32_t input_channels,
                      int32_t output_channels,
                      int32_t channel_offset,
                      int8_t *output);

/* Copy with rescaling (TFLite QUANTIZE int8 -> int8): out = clamp(requant(x + input_offset, mult, shift) +
 * output_offset, -128, 127), mult/shift = QuantizeMultiplier(s_in / s_out). May work in place. */
void emc_nn_requantize_s8(const int8_t *input,
                          int32_t size,
                          int32_t input_offset,
                          int32_t mult,
                          int32_t shift,
                          int32_t output_offset,
                          int8_t *output);

/* Mean over H and W of an NHWC tensor (TFLite MEAN int8 on axes {1, 2}); output n x c values.
 * mult/shift = QuantizeMultiplier(s_in / s_out) as TFLite prepares them; the division by h*w is folded in
 * here exactly as TFLite's reference kernel does it. input_offset = -zp_in, output_offset = +zp_out. */
arm_cmsis_nn_status emc_nn_mean_s8(const int8_t *input,
                                   const cmsis_nn_dims *input_dims,
                                   int32_t input_offset,
                                   int32_t mult,
                                   int32_t shift,
                                   int32_t output_offset,
                                   int8_t *output);

/* Nearest-neighbour resize of an NHWC tensor to output_h x output_w (TFLite RESIZE_NEAREST_NEIGHBOR; the
 * source index is computed in float exactly as TFLite's reference kernel does). */
arm_cmsis_nn_status emc_nn_resize_nearest_s8(const int8_t *input,
                                             const cmsis_nn_dims *input_dims,
                                             int32_t output_h,
                                             int32_t output_w,
                                             bool align_corners,
                                             bool half_pixel_centers,
                                             int8_t *output);

/* float -> int8 (TFLite QUANTIZE): q = clamp(round(x / scale) + zero_point), halves away from zero. */
void emc_nn_quantize_f32_s8(const float *input, int32_t size, float scale, int32_t zero_point, int8_t *output);

/* int8 -> float (TFLite DEQUANTIZE): x = scale * (q - zero_point). */
void emc_nn_dequantize_s8_f32(const int8_t *input, int32_t size, float scale, int32_t zero_point, float *output);

#ifdef __cplusplus
}
#endif

#endif /* EMC_NN_EXTRA_H */
