using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// The tiny-sd UNet2DConditionModel (golden/tiny-sd/unet) and the 9-channel inpainting UNet
/// (golden/tiny-sd-inpaint/unet) against the outputs and hooked intermediates recorded with diffusers 0.25.1
/// (golden README sections C and E).
/// </summary>
public class UNet2DConditionModelGoldenTests
{
    private const string Expected = "tiny-sd-expected.safetensors";
    private const string InpaintExpected = "tiny-sd-inpaint-expected.safetensors";

    private static UNet2DConditionModel LoadTiny() => UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), subfolder: "unet");

    [Fact]
    public void LayoutDefaultsToNchwInFloat32AndChannelsLastInBFloat16UnlessSet()
    {
        using var unet = LoadTiny();
        Assert.False(unet.ChannelsLast);
        unet.to(ScalarType.BFloat16);
        Assert.True(unet.ChannelsLast);
        unet.ChannelsLast = false;
        Assert.False(unet.ChannelsLast);
        unet.to(ScalarType.Float32);
        Assert.False(unet.ChannelsLast);
        unet.ChannelsLast = true;
        Assert.True(unet.ChannelsLast);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Output_AndIntermediatesAtT500_MatchDiffusers(bool channelsLast)
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        unet.ChannelsLast = channelsLast;
        using var x = Golden.Tensor(Expected, "unet/x");
        using var ehs = Golden.Tensor(Expected, "unet/encoder_hidden_states");
        using var golden = Golden.Open(Expected);
        var check = new GoldenIntermediates(golden, "unet/t500/intermediate/");
        unet.IntermediateHook = check.Check;
        using var output = unet.Forward(x, 500L, ehs).Sample;
        unet.IntermediateHook = null;
        Assert.Equal(new[] { "time_proj", "time_embedding", "conv_in", "down_blocks.0",
            "down_blocks.1.attentions.0.transformer_blocks.0.attn1", "down_blocks.1.attentions.0.transformer_blocks.0.attn2",
            "down_blocks.1.attentions.0.transformer_blocks.0.ff", "down_blocks.1.attentions.0", "down_blocks.1",
            "mid_block", "up_blocks.0", "up_blocks.1", "conv_norm_out", "conv_out" }, check.Seen);
        Assert.True(check.Errors.Count == 0, string.Join("\n", check.Errors));
        using var expected = Golden.Tensor(Expected, "unet/t500/out");
        Tol.Close(output, expected, Tol.ModelAbs, "t500 output");
        Assert.True(output.is_contiguous());
    }

    [Fact]
    public void ChannelsLastPass_KeepsItsLayoutThroughEveryStage()
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = Golden.Tensor(Expected, "unet/x");
        using var ehs = Golden.Tensor(Expected, "unet/encoder_hidden_states");
        var wrong = new List<string>();
        var seen = new HashSet<string>();
        // the stages every pass must have shown the hook (else an empty `wrong` proves nothing)
        var stages = new HashSet<string> { "conv_in", "down_blocks.0", "down_blocks.1", "down_blocks.1.attentions.0", "down_blocks.1.attentions.0.proj_in",
            "mid_block", "up_blocks.0", "up_blocks.0.attentions.2", "up_blocks.1", "conv_norm_out", "conv_out" };
        unet.ChannelsLast = true;
        unet.IntermediateHook = (name, h) => { if (h.dim() == 4) seen.Add(name); if (h.dim() == 4 && !IsChannelsLast(h)) wrong.Add(name); };
        using var cl = unet.Forward(x, 500L, ehs).Sample;
        Assert.Superset(stages, seen);
        Assert.Empty(wrong); // transformer blocks included
        unet.ChannelsLast = false;
        seen.Clear();
        unet.IntermediateHook = (name, h) => { seen.Add(name); if (!h.is_contiguous()) wrong.Add(name); };
        using var nchw = unet.Forward(x, 500L, ehs).Sample;
        Assert.Superset(stages, seen);
        Assert.Empty(wrong); // and a NCHW pass stays NCHW
        Tol.Close(cl, nchw, 1e-5, "channels-last vs NCHW pass");
    }

    internal static bool IsChannelsLast(Tensor x) =>
        x.stride(1) == 1 && x.stride(3) == x.shape[1] && x.stride(2) == x.shape[1] * x.shape[3] && x.stride(0) == x.shape[1] * x.shape[2] * x.shape[3];

    [Fact]
    public void IntAndZeroDimTensorTimesteps_MatchDiffusers()
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = Golden.Tensor(Expected, "unet/x");
        using var ehs = Golden.Tensor(Expected, "unet/encoder_hidden_states");
        using var e1 = Golden.Tensor(Expected, "unet/t1/out");
        using var o1 = unet.Forward(x, 1L, ehs).Sample;
        Tol.Close(o1, e1, Tol.ModelAbs, "t=1 (int)");
        // t999 was recorded with a 0-d tensor
        using var t999 = torch.tensor(999L);
        using var e999 = Golden.Tensor(Expected, "unet/t999/out");
        using var o999 = unet.Forward(x, t999, ehs).Sample;
        Tol.Close(o999, e999, Tol.ModelAbs, "t=999 (0-d tensor)");
    }

    [Fact]
    public void BatchOfTwoWithOneTimestepEach_MatchesDiffusers()
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = Golden.Tensor(Expected, "unet/x_batch2");
        using var ehs = Golden.Tensor(Expected, "unet/encoder_hidden_states_batch2");
        using var t = Golden.Tensor(Expected, "unet/batch2/timestep");
        Assert.Equal(new long[] { 10, 900 }, t.data<long>().ToArray());
        using var expected = Golden.Tensor(Expected, "unet/batch2/out");
        using var output = unet.Forward(x, t, ehs).Sample;
        Tol.Close(output, expected, Tol.ModelAbs, "batch of 2, timesteps [10, 900]");
        // each item alone gives the same as in the batch
        using var x1 = x[1..2];
        using var e1 = ehs[1..2];
        using var item = unet.Forward(x1, 900L, e1).Sample;
        using var fromBatch = expected[1..2];
        Tol.Close(item, fromBatch, Tol.ModelAbs, "item 1 alone");
    }

    [Fact]
    public void FractionalDoubleTimestep_IsNotTruncated()
    {
        // diffusers turns a Python float into a float64 tensor (unlike UNet2DModel's int64): 500.5 != 500.
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = Golden.Tensor(Expected, "unet/x");
        using var ehs = Golden.Tensor(Expected, "unet/encoder_hidden_states");
        using var a = unet.Forward(x, 500.5, ehs).Sample;
        using var b = unet.Forward(x, torch.tensor(new[] { 500.5f }), ehs).Sample;
        using var e500 = Golden.Tensor(Expected, "unet/t500/out");
        Assert.True(Tol.MaxAbsDiff(a, e500) > 1e-5, "500.5 must not act as 500");
        Tol.Close(a, b, 1e-6, "float64 vs float32 fractional timestep");
        using var whole = unet.Forward(x, 500.0, ehs).Sample;
        Tol.Close(whole, e500, Tol.ModelAbs, "500.0 as a double");
    }

    [Fact]
    public void InpaintingUNetWithNineInputChannels_MatchesDiffusers()
    {
        using var _ = torch.no_grad();
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd-inpaint"), subfolder: "unet");
        Assert.Equal(9, unet.Config.InChannels);
        using var x = Golden.Tensor(InpaintExpected, "unet/x");
        using var ehs = Golden.Tensor(InpaintExpected, "unet/encoder_hidden_states");
        using var golden = Golden.Open(InpaintExpected);
        var check = new GoldenIntermediates(golden, "unet/t500/intermediate/");
        unet.IntermediateHook = check.Check;
        using var output = unet.Forward(x, 500L, ehs).Sample;
        Assert.Equal(new[] { "conv_in", "down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.1", "conv_out" }, check.Seen);
        Assert.True(check.Errors.Count == 0, string.Join("\n", check.Errors));
        using var expected = Golden.Tensor(InpaintExpected, "unet/t500/out");
        Tol.Close(output, expected, Tol.ModelAbs, "inpaint UNet t500 output");
    }

    [Fact]
    public void OddLatentSize_PassesExplicitUpsampleSizes()
    {
        // 31 x 33 is not a multiple of 2^num_upsamplers (2): diffusers hands each upsampler the skip state's size
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        Assert.Equal(1, unet.NumUpsamplers);
        using var x = torch.randn(new long[] { 1, 4, 31, 33 }, generator: new Generator(5));
        using var ehs = Golden.Tensor(Expected, "unet/encoder_hidden_states");
        using var output = unet.Forward(x, 10L, ehs).Sample;
        Assert.Equal(new long[] { 1, 4, 31, 33 }, output.shape);
        Assert.False(output.isnan().any().item<bool>());
    }

    [Fact]
    public void EncoderAttentionMask_DropsMaskedTokens()
    {
        // 1 = keep, 0 = discard becomes a -10000 bias: masking the last 70 of 77 text tokens is the same as
        // passing only the first 7
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = Golden.Tensor(Expected, "unet/x");
        using var ehs = Golden.Tensor(Expected, "unet/encoder_hidden_states");
        using var mask = torch.cat(new[] { torch.ones(1, 7), torch.zeros(1, 70) }, dim: 1);
        using var masked = unet.Forward(x, 500L, ehs, encoderAttentionMask: mask).Sample;
        using var first7 = ehs[.., ..7, ..];
        using var truncated = unet.Forward(x, 500L, first7).Sample;
        Tol.Close(masked, truncated, Tol.ModelAbs, "masked vs truncated text states");
        using var full = Golden.Tensor(Expected, "unet/t500/out");
        Assert.True(Tol.MaxAbsDiff(masked, full) > 1e-4, "the mask must change the result");
        using var ones = torch.ones(1, 77);
        using var unmasked = unet.Forward(x, 500L, ehs, encoderAttentionMask: ones).Sample;
        Tol.Close(unmasked, full, Tol.ModelAbs, "all-ones mask");
    }

    [Fact]
    public void ClassEmbeddings_AreAddedToTheTimeEmbedding()
    {
        using var _ = torch.no_grad();
        var c = DiffusersSharp.Loading.ConfigJson.Read<UNet2DConditionModelConfig>(Golden.Path("tiny-sd", "unet", "config.json"))
            with
        { NumClassEmbeds = 10 };
        torch.manual_seed(1);
        using var unet = UNet2DConditionModel.FromConfig(c);
        unet.eval();
        var p = unet.named_parameters().ToDictionary(x => x.name, x => x.parameter.shape);
        Assert.Equal(new long[] { 10, 128 }, p["class_embedding.weight"]);
        using var x = torch.randn(1, 4, 16, 16);
        using var ehs = torch.randn(1, 5, 32);
        var e = Assert.Throws<ArgumentException>(() => unet.Forward(x, 10L, ehs));
        Assert.Equal("class_labels should be provided when num_class_embeds > 0", e.Message);
        using var l3 = torch.tensor(new long[] { 3 });
        using var l4 = torch.tensor(new long[] { 4 });
        using var a = unet.Forward(x, 10L, ehs, classLabels: l3).Sample;
        using var b = unet.Forward(x, 10L, ehs, classLabels: l4).Sample;
        Assert.True(Tol.MaxAbsDiff(a, b) > 0, "different classes must give different outputs");
    }

    [Fact]
    public void WrongInputs_AreRejectedWithClearMessages()
    {
        using var _ = torch.no_grad();
        using var unet = LoadTiny();
        using var x = Golden.Tensor(Expected, "unet/x");
        using var ehs768 = torch.zeros(1, 77, 768);
        var e = Assert.Throws<ArgumentException>(() => unet.Forward(x, 1L, ehs768));
        Assert.Equal("UNet2DConditionModel: encoder_hidden_states have hidden size 768, but the UNet's cross_attention_dim is 32", e.Message);
        using var x9 = torch.zeros(1, 9, 32, 32);
        using var ehs = Golden.Tensor(Expected, "unet/encoder_hidden_states");
        e = Assert.Throws<ArgumentException>(() => unet.Forward(x9, 1L, ehs));
        Assert.Equal("UNet2DConditionModel expects a sample of shape (batch, 4, height, width), got [1, 9, 32, 32]", e.Message);
    }
}
