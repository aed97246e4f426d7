using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// Bad arguments to the models' forward passes (<c>Models/ModelInputs</c> and each model's own checks), on the tiny
/// golden models: each is an <see cref="ArgumentException"/> naming the argument, where diffusers 0.25.1 fails inside
/// torch without naming it (mixed dtypes, an empty input, a class id outside the table) or returns NaN for a NaN number.
/// </summary>
public class ModelBadInputTests
{
    private static readonly Lazy<UNet2DModel> Ddpm = new(() => UNet2DModel.FromPretrained(Golden.Path("tiny-ddpm"), "unet"));
    private static readonly Lazy<UNet2DConditionModel> Sd = new(() => UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), "unet"));
    private static readonly Lazy<ControlNetModel> ControlNet = new(() => ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet")));
    private static readonly Lazy<AutoencoderKL> Vae = new(() => AutoencoderKL.FromPretrained(Golden.Path("tiny-sd"), "vae"));
    private static readonly Lazy<AutoencoderTiny> Taesd = new(() => AutoencoderTiny.FromPretrained(Golden.Path("tiny-taesd")));

    private static UNet2DConditionModelConfig SdConfig() =>
        ConfigJson.Read<UNet2DConditionModelConfig>(Golden.Path("tiny-sd", "unet", "config.json"));

    private static string Refused(Action call) => Assert.Throws<ArgumentException>(call).Message;

    [Fact]
    public void InputsOfAnotherDtypeThanTheWeightsAreNamed()
    {
        using var _ = torch.no_grad();
        var bf16 = ScalarType.BFloat16;
        // libtorch: "Input type (c10::BFloat16) and bias type (float) should be the same", "mat1 and mat2 must have the same dtype"
        Assert.Equal("UNet2DModel: sample has dtype BFloat16, but the model runs in Float32; pass it in Float32 (Parameter 'sample')",
            Refused(() => Ddpm.Value.Forward(torch.zeros(1, 3, 32, 32, bf16), 10L)));
        Assert.Equal("UNet2DConditionModel: sample has dtype BFloat16, but the model runs in Float32; pass it in Float32 (Parameter 'sample')",
            Refused(() => Sd.Value.Forward(torch.zeros(1, 4, 16, 16, bf16), 10L, torch.zeros(1, 5, 32))));
        Assert.Equal("UNet2DConditionModel: encoder_hidden_states has dtype BFloat16, but the model runs in Float32; pass it in Float32 (Parameter 'encoder_hidden_states')",
            Refused(() => Sd.Value.Forward(torch.zeros(1, 4, 16, 16), 10L, torch.zeros(1, 5, 32, bf16))));
        Assert.Equal("ControlNetModel: controlnet_cond has dtype BFloat16, but the model runs in Float32; pass it in Float32 (Parameter 'controlnet_cond')",
            Refused(() => ControlNet.Value.Forward(torch.zeros(1, 4, 16, 16), 10L, torch.zeros(1, 5, 32), torch.zeros(1, 3, 32, 32, bf16))));
        Assert.Equal("AutoencoderKL.Decode: latents has dtype Float64, but the model runs in Float32; pass it in Float32 (Parameter 'latents')",
            Refused(() => Vae.Value.Decode(torch.zeros(1, 4, 8, 8, ScalarType.Float64))));
        Assert.Equal("AutoencoderKL.Encode: images has dtype BFloat16, but the model runs in Float32; pass it in Float32 (Parameter 'images')",
            Refused(() => Vae.Value.Encode(torch.zeros(1, 3, 16, 16, bf16))));
        Assert.Equal("AutoencoderTiny.Decode: latents has dtype Float64, but the model runs in Float32; pass it in Float32 (Parameter 'latents')",
            Refused(() => Taesd.Value.Decode(torch.zeros(1, 4, 8, 8, ScalarType.Float64))));
        // integer latents are decoded (AutoencoderTinyGoldenTests), integer images are not: a uint8 image of [0, 255]
        // is read as far outside [-1, 1] by diffusers' encoder
        Assert.Equal("AutoencoderTiny.Encode: images has dtype Byte, but the model runs in Float32; pass it in Float32 (Parameter 'images')",
            Refused(() => Taesd.Value.Encode(torch.zeros(1, 3, 16, 16, ScalarType.Byte))));
    }

    [Fact]
    public void EmptyInputsAreRefused()
    {
        using var _ = torch.no_grad();
        // a zero-sized dimension failed in the first convolution ("Kernel size can't be greater than actual input size") or
        // attention reshape; zero prompt tokens ran cross-attention over nothing without a word
        Assert.Equal("UNet2DModel: sample is empty (shape [1, 3, 0, 0]); every dimension must be at least 1 (Parameter 'sample')",
            Refused(() => Ddpm.Value.Forward(torch.zeros(1, 3, 0, 0), 10L)));
        Assert.Equal("UNet2DConditionModel: sample is empty (shape [0, 4, 16, 16]); every dimension must be at least 1 (Parameter 'sample')",
            Refused(() => Sd.Value.Forward(torch.zeros(0, 4, 16, 16), 10L, torch.zeros(0, 5, 32))));
        Assert.Equal("UNet2DConditionModel: encoder_hidden_states is empty (shape [1, 0, 32]); every dimension must be at least 1 (Parameter 'encoder_hidden_states')",
            Refused(() => Sd.Value.Forward(torch.zeros(1, 4, 16, 16), 10L, torch.zeros(1, 0, 32))));
        Assert.Equal("ControlNetModel: encoder_hidden_states is empty (shape [1, 0, 32]); every dimension must be at least 1 (Parameter 'encoder_hidden_states')",
            Refused(() => ControlNet.Value.Forward(torch.zeros(1, 4, 16, 16), 10L, torch.zeros(1, 0, 32), torch.zeros(1, 3, 32, 32))));
        Assert.Equal("AutoencoderKL.Decode: latents is empty (shape [1, 4, 0, 0]); every dimension must be at least 1 (Parameter 'latents')",
            Refused(() => Vae.Value.Decode(torch.zeros(1, 4, 0, 0))));
        Assert.Equal("AutoencoderTiny.Encode: images is empty (shape [1, 3, 0, 8]); every dimension must be at least 1 (Parameter 'images')",
            Refused(() => Taesd.Value.Encode(torch.zeros(1, 3, 0, 8))));
        Assert.Equal("sample", Assert.Throws<ArgumentNullException>(() => Ddpm.Value.Forward(null!, 10L)).ParamName);
        Assert.Equal("timestep", Assert.Throws<ArgumentNullException>(() => Sd.Value.Forward(torch.zeros(1, 4, 16, 16), (Tensor)null!, torch.zeros(1, 5, 32))).ParamName);
    }

    [Fact]
    public void NonFiniteNumbersAreRefused()
    {
        using var _ = torch.no_grad();
        // UNet2DModel cast NaN and 1e30 to an arbitrary int64 (diffusers' torch.tensor([t], dtype=torch.long) fails);
        // the others returned NaN everywhere
        Assert.Equal("UNet2DModel: timestep must be a finite number, got NaN (Parameter 'timestep')",
            Refused(() => Ddpm.Value.Forward(torch.zeros(1, 3, 32, 32), double.NaN)));
        Assert.Equal("UNet2DModel: timestep 1E+30 does not fit an int64 (Parameter 'timestep')",
            Refused(() => Ddpm.Value.Forward(torch.zeros(1, 3, 32, 32), 1e30)));
        Assert.Equal("UNet2DConditionModel: timestep must be a finite number, got Infinity (Parameter 'timestep')",
            Refused(() => Sd.Value.Forward(torch.zeros(1, 4, 16, 16), double.PositiveInfinity, torch.zeros(1, 5, 32))));
        Assert.Equal("ControlNetModel: conditioning_scale must be a finite number, got NaN (Parameter 'conditioning_scale')",
            Refused(() => ControlNet.Value.Forward(torch.zeros(1, 4, 16, 16), 10L, torch.zeros(1, 5, 32), torch.zeros(1, 3, 32, 32), conditioningScale: double.NaN)));
    }

    [Fact]
    public void ClassLabelsOutsideTheTableOfAnotherDtypeOrBatchAreNamed()
    {
        using var _ = torch.no_grad();
        var config = ConfigJson.Read<UNet2DModelConfig>(Golden.Path("tiny-ddpm", "unet", "config.json")) with { NumClassEmbeds = 10 };
        using var unet = UNet2DModel.FromConfig(config);
        using var x = torch.zeros(2, 3, 32, 32);
        // libtorch: "index out of range in self", "Expected tensor for argument #1 'indices' to have one of the following
        // scalar types", "The size of tensor a (2) must match the size of tensor b (3)"
        Assert.Equal("class_labels must be in [0, 10) (num_class_embeds 10), got 10, -1 (Parameter 'class_labels')",
            Refused(() => unet.Forward(x, 10L, torch.tensor(new long[] { 10, -1 }))));
        Assert.Equal("class_labels must be integer class ids for the num_class_embeds table, got Float32 (Parameter 'class_labels')",
            Refused(() => unet.Forward(x, 10L, torch.tensor(new float[] { 1, 2 }))));
        Assert.Equal("class_labels of shape [3] do not fit a batch of 2; pass one label or one per sample (Parameter 'class_labels')",
            Refused(() => unet.Forward(x, 10L, torch.tensor(new long[] { 1, 2, 3 }))));
        using var one = unet.Forward(x, 10L, torch.tensor(new long[] { 3 })).Sample;   // one label for the batch, as diffusers broadcasts it
        Assert.Equal([2L, 3, 32, 32], one.shape);
    }

    [Fact]
    public void TimestepCondAdapterResidualsAndEncoderMaskMustFitTheirTensors()
    {
        using var _ = torch.no_grad();
        using var lcm = UNet2DConditionModel.FromConfig(SdConfig() with { TimeCondProjDim = 8 });
        using var x = torch.zeros(2, 4, 16, 16);
        using var ehs = torch.zeros(2, 5, 32);
        // "mat1 and mat2 shapes cannot be multiplied (2x7 and 8x32)", "The size of tensor a (2) must match the size of tensor b (3)"
        Assert.Equal("timestep_cond has shape [2, 7], but the time embedding takes [2 (the batch) or 1, 8 (time_cond_proj_dim)] or [8] (Parameter 'timestep_cond')",
            Refused(() => lcm.Forward(x, 10L, ehs, timestepCond: torch.zeros(2, 7))));
        Assert.Equal("timestep_cond has shape [3, 8], but the time embedding takes [2 (the batch) or 1, 8 (time_cond_proj_dim)] or [8] (Parameter 'timestep_cond')",
            Refused(() => lcm.Forward(x, 10L, ehs, timestepCond: torch.zeros(3, 8))));
        Assert.Equal("timestep_cond has shape [7], but the time embedding takes [2 (the batch) or 1, 8 (time_cond_proj_dim)] or [8] (Parameter 'timestep_cond')",
            Refused(() => lcm.Forward(x, 10L, ehs, timestepCond: torch.zeros(7))));
        // (1, B, 8) would give the time embedding a dimension more (diffusers' result has the wrong rank)
        Assert.Equal("timestep_cond has shape [1, 2, 8], but the time embedding takes [2 (the batch) or 1, 8 (time_cond_proj_dim)] or [8] (Parameter 'timestep_cond')",
            Refused(() => lcm.Forward(x, 10L, ehs, timestepCond: torch.zeros(1, 2, 8))));
        // "mat1 and mat2 must have the same dtype, but got Double and Float"
        Assert.Equal("timestep_cond has dtype Float64, but the time embedding runs in Float32; pass it in Float32 (Parameter 'timestep_cond')",
            Refused(() => lcm.Forward(x, 10L, ehs, timestepCond: torch.zeros(2, 8, dtype: torch.float64))));
        // a T2I-Adapter residual of other channels failed in torch's broadcast; one of size-1 channels spread without a word
        Tensor[] adapter = [torch.zeros(2, 1, 16, 16), torch.zeros(2, 64, 8, 8)];
        Assert.Equal("UNet2DConditionModel: a down_intrablock_additional_residuals tensor has shape [2, 1, 16, 16], but the down block it goes into gives [2, 32, 8, 8] " +
                     "(T2I-Adapter residuals: one per down block, in order, of that block's output shape; a batch of 1 serves every sample) (Parameter 'down_intrablock_additional_residuals')",
            Refused(() => Sd.Value.Forward(x, 10L, ehs, downIntrablockAdditionalResiduals: adapter)));
        // the mask's length against the attention's keys: torch's "The size of tensor a (5) must match the size of tensor b (7)"
        Assert.Equal("UNet2DConditionModel: encoder_attention_mask has shape [2, 7], but encoder_hidden_states [2, 5, 32] need one of [2, 5] or [2, 1, 5] (1 = keep a token, 0 = discard it) " +
                     "(Parameter 'encoder_attention_mask')",
            Refused(() => Sd.Value.Forward(x, 10L, ehs, encoderAttentionMask: torch.ones(2, 7))));
        // a mask per query token fits no UNet whose attention runs at several resolutions
        Assert.Equal("UNet2DConditionModel: encoder_attention_mask has shape [2, 3, 5], but encoder_hidden_states [2, 5, 32] need one of [2, 5] or [2, 1, 5] (1 = keep a token, 0 = discard it) " +
                     "(Parameter 'encoder_attention_mask')",
            Refused(() => Sd.Value.Forward(x, 10L, ehs, encoderAttentionMask: torch.ones(2, 3, 5))));
    }

    [Fact]
    public void SdxlTextEmbedsMustBeAMatrix()
    {
        using var _ = torch.no_grad();
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sdxl"), "unet");
        // before: "... make -1 features per sample, but projection_class_embeddings_input_dim is 72"
        Assert.Equal("UNet2DConditionModel: text_embeds (the pooled prompt embeddings) must be [batch, dim], got [1, 1, 24] (Parameter 'text_embeds')",
            Refused(() => unet.Forward(torch.zeros(1, 4, 16, 16), 10L, torch.zeros(1, 5, 48), addedCondKwargs: new AddedCondKwargs(torch.zeros(1, 1, 24), torch.zeros(1, 6)))));
    }

    [Fact]
    public void VaeEncodeNeedsTwoPixelsPerDownsampler()
    {
        using var _ = torch.no_grad();
        // torch: "Calculated padded input size per channel: (2 x 2). Kernel size: (3 x 3). Kernel size can't be greater than actual input size"
        Assert.Equal("AutoencoderKL.Encode: the images are 1x1, but the encoder's 1 downsamplers (stride 2, 3×3) need at least 2x2 (Parameter 'images')",
            Refused(() => Vae.Value.Encode(torch.zeros(1, 3, 1, 1))));
        using var smallest = Vae.Value.Encode(torch.zeros(1, 3, 2, 2)).LatentDist;
        Assert.Equal([1L, 8, 1, 1], smallest.Parameters.shape);
    }
}
