using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// The SDXL UNets (addition_embed_type "text_time", per-block transformer depths) of golden section F: tiny-sdxl/unet
/// and tiny-sdxl-refiner/unet against the outputs and hooked intermediates recorded with diffusers 0.25.1.
/// </summary>
public class UNet2DConditionModelSdxlTests
{
    private const string Expected = "tiny-sdxl-expected.safetensors";

    private static UNet2DConditionModel Load(string folder) => UNet2DConditionModel.FromPretrained(Golden.Path(folder), subfolder: "unet");

    /// <summary>The recorded added_cond_kwargs under <paramref name="prefix"/>.</summary>
    private static AddedCondKwargs Added(string prefix) =>
        new(Golden.Tensor(Expected, prefix + "text_embeds"), Golden.Tensor(Expected, prefix + "time_ids"));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Output_AndIntermediatesAtT500_MatchDiffusers(bool channelsLast)
    {
        using var _ = torch.no_grad();
        using var unet = Load("tiny-sdxl");
        unet.ChannelsLast = channelsLast;
        using var x = Golden.Tensor(Expected, "unet/x");
        using var ehs = Golden.Tensor(Expected, "unet/encoder_hidden_states");
        var added = Added("unet/");
        using var golden = Golden.Open(Expected);
        var check = new GoldenIntermediates(golden, "unet/t500/intermediate/");
        unet.IntermediateHook = check.Check;
        using var output = unet.Forward(x, 500L, ehs, addedCondKwargs: added).Sample;
        unet.IntermediateHook = null;
        Assert.Equal(new[] { "time_proj", "time_embedding", "add_time_proj", "add_embedding", "conv_in", "down_blocks.0",
            "down_blocks.1.attentions.0", "down_blocks.1", "down_blocks.2.attentions.0.proj_in",
            "down_blocks.2.attentions.0.transformer_blocks.0.attn2", "down_blocks.2.attentions.0.transformer_blocks.1",
            "down_blocks.2", "mid_block.attentions.0", "mid_block", "up_blocks.0", "up_blocks.1", "up_blocks.2",
            "conv_norm_out", "conv_out" }, check.Seen);
        Assert.True(check.Errors.Count == 0, string.Join("\n", check.Errors));
        using var expected = Golden.Tensor(Expected, "unet/t500/out");
        Tol.Close(output, expected, Tol.ModelAbs, "tiny-sdxl t500 output");
    }

    [Fact]
    public void BatchOfTwo_WithFractionalTimesteps_MatchesDiffusers()
    {
        using var _ = torch.no_grad();
        using var unet = Load("tiny-sdxl");
        using var x = Golden.Tensor(Expected, "unet/batch2/x");
        using var ehs = Golden.Tensor(Expected, "unet/batch2/encoder_hidden_states");
        using var t = Golden.Tensor(Expected, "unet/batch2/timestep");
        Assert.Equal(new[] { 999.0f, 1.5f }, t.data<float>().ToArray());
        using var output = unet.Forward(x, t, ehs, addedCondKwargs: Added("unet/batch2/")).Sample;
        using var expected = Golden.Tensor(Expected, "unet/batch2/out");
        Tol.Close(output, expected, Tol.ModelAbs, "tiny-sdxl batch of 2");
    }

    [Fact]
    public void RefinerUNet_WithFiveTimeIds_MatchesDiffusers()
    {
        using var _ = torch.no_grad();
        using var unet = Load("tiny-sdxl-refiner");
        using var x = Golden.Tensor(Expected, "refiner_unet/x");
        using var ehs = Golden.Tensor(Expected, "refiner_unet/encoder_hidden_states");
        using var golden = Golden.Open(Expected);
        var check = new GoldenIntermediates(golden, "refiner_unet/t300/intermediate/");
        unet.IntermediateHook = check.Check;
        using var output = unet.Forward(x, 300L, ehs, addedCondKwargs: Added("refiner_unet/")).Sample;
        unet.IntermediateHook = null;
        Assert.Equal(new[] { "add_time_proj", "add_embedding", "down_blocks.1", "mid_block", "up_blocks.3" }, check.Seen);
        Assert.True(check.Errors.Count == 0, string.Join("\n", check.Errors));
        using var expected = Golden.Tensor(Expected, "refiner_unet/t300/out");
        Tol.Close(output, expected, Tol.ModelAbs, "tiny refiner t300 output");
    }

    [Fact]
    public void MissingOrMisshapenAddedConditioning_IsAnErrorNamingIt()
    {
        using var _ = torch.no_grad();
        using var unet = Load("tiny-sdxl");
        using var x = torch.zeros(1, 4, 8, 8);
        using var ehs = torch.zeros(1, 7, 48);
        using var textEmbeds = torch.zeros(1, 24);
        using var timeIds = torch.zeros(1, 6);
        var e = Assert.Throws<ArgumentException>(() => unet.Forward(x, 1L, ehs));
        Assert.Equal("UNet2DConditionModel has the config param `addition_embed_type` set to 'text_time' which requires the keyword argument `text_embeds` to be passed in `added_cond_kwargs`", e.Message);
        e = Assert.Throws<ArgumentException>(() => unet.Forward(x, 1L, ehs, addedCondKwargs: new(TextEmbeds: textEmbeds)));
        Assert.Contains("the keyword argument `time_ids`", e.Message);
        using var fiveIds = torch.zeros(1, 5);
        e = Assert.Throws<ArgumentException>(() => unet.Forward(x, 1L, ehs, addedCondKwargs: new(textEmbeds, fiveIds)));
        Assert.Equal("UNet2DConditionModel: text_embeds [1, 24] and time_ids [1, 5] (each id embedded in 8) make 64 features per sample, but projection_class_embeddings_input_dim is 72", e.Message);
        using var ok = unet.Forward(x, 1L, ehs, addedCondKwargs: new(textEmbeds, timeIds)).Sample;
        Assert.Equal(x.shape, ok.shape);
    }

    [Fact]
    public void AddedEmbeddingWeights_HaveDiffusersNames()
    {
        using var unet = Load("tiny-sdxl");
        var p = unet.named_parameters().ToDictionary(x => x.name, x => x.parameter.shape);
        Assert.Equal(new long[] { 32, 72 }, p["add_embedding.linear_1.weight"]);
        Assert.Equal(new long[] { 32, 32 }, p["add_embedding.linear_2.weight"]);
        Assert.DoesNotContain(p.Keys, k => k.StartsWith("add_time_proj", StringComparison.Ordinal)); // no weights
    }
}
