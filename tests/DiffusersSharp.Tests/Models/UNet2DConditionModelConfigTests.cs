using System.Text.Json;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>UNet2DConditionModel config reading/writing, save/load round trips and config errors.</summary>
public class UNet2DConditionModelConfigTests
{
    [Fact]
    public void TinySdConfig_IsReadWithEveryKey()
    {
        var c = ConfigJson.Read<UNet2DConditionModelConfig>(Golden.Path("tiny-sd", "unet", "config.json"));
        Assert.Equal(new[] { 32 }, c.SampleSize);
        Assert.Equal(new[] { 2 }, c.AttentionHeadDim);
        Assert.Null(c.NumAttentionHeads);
        Assert.Equal(new[] { 32 }, c.CrossAttentionDim);
        Assert.Equal(new[] { false }, c.OnlyCrossAttention);
        Assert.Equal(new TransformerDepth[] { 1 }, c.TransformerLayersPerBlock);
        Assert.Equal(new[] { 2 }, c.LayersPerBlock);
        Assert.Equal("UNetMidBlock2DCrossAttn", c.MidBlockType);
        Assert.Null(c.ReverseTransformerLayersPerBlock);
        Assert.Equal(64, c.AdditionEmbedTypeNumHeads);
        Assert.Null(c.Extra); // every key of a diffusers 0.25.1 config is modelled
    }

    [Fact]
    public void ZeroTransformerLayersInABlockBuildAndRunAsInDiffusers()
    {
        // diffusers' small SDXL ControlNets and UNets set transformer_layers_per_block 0 for some blocks: a
        // Transformer2DModel of no layers (its norm and projections only)
        var c = ConfigJson.Read<UNet2DConditionModelConfig>(Golden.Path("tiny-sd", "unet", "config.json")) with { TransformerLayersPerBlock = [0] };
        UNet2DConditionModelConfigValidation.Validate(c, "unet/config.json");
        using var unet = UNet2DConditionModel.FromConfig(c);
        Assert.DoesNotContain(unet.named_parameters(), p => p.name.Contains("transformer_blocks", StringComparison.Ordinal));
        Assert.Contains(unet.named_parameters(), p => p.name.EndsWith("attentions.0.proj_in.weight", StringComparison.Ordinal));
        using var _ = torch.NewDisposeScope();
        var output = unet.Forward(torch.randn(1, 4, 16, 16), 10, torch.randn(1, 7, 32)).Sample;
        Assert.Equal(new long[] { 1, 4, 16, 16 }, output.shape);
        Assert.True(torch.isfinite(output).all().item<bool>());
    }

    [Fact]
    public void ASampleSizeOffTheDownsamplingFactorLoadsAndRunsAsInDiffusers()
    {
        // diffusers does not check sample_size; the forward pass hands the upsamplers the skip states' sizes
        // (forward_upsample_size) when a side is not a multiple of 2^num_upsamplers
        using var dir = new TempDir();
        Golden.CopyModel(dir.Path, c => c.Replace("\"sample_size\": 32", "\"sample_size\": 33"), "tiny-sd", "unet");
        using var unet = UNet2DConditionModel.FromPretrained(dir.Path);
        Assert.Equal(new[] { 33 }, unet.Config.SampleSize);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var output = unet.Forward(torch.randn(1, 4, 33, 33), 10L, torch.randn(1, 7, 32)).Sample;
        Assert.Equal(new long[] { 1, 4, 33, 33 }, output.shape);
        Assert.True(torch.isfinite(output).all().item<bool>());
    }

    [Fact]
    public void PerBlockLists_RoundTripAsDiffusersWritesThem()
    {
        var c = ConfigJson.Parse<UNet2DConditionModelConfig>(UNet2DConditionModelArchitectureTests.Sd21Config, "sd21");
        c = c with { OnlyCrossAttention = [false, true, false, false], TransformerLayersPerBlock = [1, 2, 2, 1] };
        string json = ConfigJson.Serialize(c);
        using var doc = JsonDocument.Parse(json);
        Assert.Equal("[5,10,20,20]", doc.RootElement.GetProperty("attention_head_dim").GetRawText().Replace(" ", "").Replace("\n", "").Replace("\r", ""));
        Assert.Equal(JsonValueKind.Number, doc.RootElement.GetProperty("cross_attention_dim").ValueKind);
        Assert.Equal(JsonValueKind.Number, doc.RootElement.GetProperty("layers_per_block").ValueKind);
        var back = ConfigJson.Parse<UNet2DConditionModelConfig>(json, "round trip");
        Assert.Equal(c.AttentionHeadDim, back.AttentionHeadDim);
        Assert.Equal(c.OnlyCrossAttention, back.OnlyCrossAttention);
        Assert.Equal(c.TransformerLayersPerBlock, back.TransformerLayersPerBlock);
        Assert.Equal(c.CrossAttentionDim, back.CrossAttentionDim);
        Assert.True(back.UseLinearProjection && back.UpcastAttention == true);
    }

    [Fact]
    public void SavePretrained_ThenFromPretrained_GivesTheSameOutput()
    {
        using var _ = torch.no_grad();
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), subfolder: "unet");
        using var dir = new TempDir();
        unet.SavePretrained(dir.Path);
        using var reloaded = UNet2DConditionModel.FromPretrained(dir.Path);
        Assert.Equal("UNet2DConditionModel", reloaded.Config.ClassName);
        using var x = Golden.Tensor("tiny-sd-expected.safetensors", "unet/x");
        using var ehs = Golden.Tensor("tiny-sd-expected.safetensors", "unet/encoder_hidden_states");
        using var a = unet.Forward(x, 500L, ehs).Sample;
        using var b = reloaded.Forward(x, 500L, ehs).Sample;
        Assert.Equal(0.0, Tol.MaxAbsDiff(a, b));
    }

    [Fact]
    public void FromPretrained_WithDtype_RunsInThatDtype()
    {
        using var _ = torch.no_grad();
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), "unet", new() { Dtype = ScalarType.Float64 });
        Assert.Equal(ScalarType.Float64, unet.DType);
        using var x = Golden.Tensor("tiny-sd-expected.safetensors", "unet/x");
        using var ehs = Golden.Tensor("tiny-sd-expected.safetensors", "unet/encoder_hidden_states");
        using var x64 = x.to(ScalarType.Float64);
        using var e64 = ehs.to(ScalarType.Float64);
        using var output = unet.Forward(x64, 500L, e64).Sample;
        Assert.Equal(ScalarType.Float64, output.dtype);
        using var expected = Golden.Tensor("tiny-sd-expected.safetensors", "unet/t500/out");
        Tol.Close(output, expected, Tol.ModelAbs, "float64 model vs diffusers' float32");
    }

    [Fact]
    public void OnlyCrossAttentionPerBlock_MakesAttn1AttendToTheTextStates()
    {
        using var _ = torch.no_grad();
        var c = ConfigJson.Read<UNet2DConditionModelConfig>(Golden.Path("tiny-sd", "unet", "config.json"))
            with
        { OnlyCrossAttention = [false, true] };
        using var unet = UNet2DConditionModel.FromConfig(c);
        var p = unet.named_parameters().ToDictionary(x => x.name, x => x.parameter.shape);
        // attn1's keys/values come from the 32-wide text states in the cross-attention blocks
        Assert.Equal(new long[] { 64, 32 }, p["down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k.weight"]);
        Assert.Equal(new long[] { 64, 32 }, p["up_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v.weight"]);
        Assert.Equal(new long[] { 64, 64 }, p["mid_block.attentions.0.transformer_blocks.0.attn1.to_k.weight"]); // the mid block ignores it
        using var x = torch.randn(1, 4, 16, 16);
        using var ehs = torch.randn(1, 7, 32);
        using var output = unet.Forward(x, 3L, ehs).Sample;
        Assert.Equal(new long[] { 1, 4, 16, 16 }, output.shape);
    }

    [Theory]
    [InlineData("\"num_attention_heads\": 8", "num_attention_heads", "At the moment it is not possible to define the number of attention heads via `num_attention_heads`")]
    [InlineData("\"attention_head_dim\": [2, 2, 2]", "attention_head_dim", "Must provide the same number of `attention_head_dim` as `down_block_types`")]
    [InlineData("\"attention_head_dim\": 3", "attention_head_dim", "block 1: 64 channels cannot be split into 3 attention heads")]
    [InlineData("\"transformer_layers_per_block\": [1]", "transformer_layers_per_block", "Must provide the same number of `transformer_layers_per_block` as `down_block_types`. `transformer_layers_per_block`: [1], a list of 1 entry. `down_block_types`: 2 blocks. A list needs an entry per down block; only a bare value (1, not [1]) is for every block.")]
    [InlineData("\"attention_head_dim\": [2]", "attention_head_dim", "Must provide the same number of `attention_head_dim` as `down_block_types`. `attention_head_dim`: [2], a list of 1 entry. `down_block_types`: 2 blocks. A list needs an entry per down block; only a bare value (2, not [2]) is for every block.")]
    [InlineData("\"layers_per_block\": [2]", "layers_per_block", "Must provide the same number of `layers_per_block` as `down_block_types`. `layers_per_block`: [2], a list of 1 entry. `down_block_types`: 2 blocks. A list needs an entry per down block; only a bare value (2, not [2]) is for every block.")]
    [InlineData("\"cross_attention_dim\": [32]", "cross_attention_dim", "Must provide the same number of `cross_attention_dim` as `down_block_types`. `cross_attention_dim`: [32], a list of 1 entry. `down_block_types`: 2 blocks. A list needs an entry per down block; only a bare value (32, not [32]) is for every block.")]
    [InlineData("\"only_cross_attention\": [false]", "only_cross_attention", "Must provide the same number of `only_cross_attention` as `down_block_types`. `only_cross_attention`: [false], a list of 1 entry. `down_block_types`: 2 blocks. A list needs an entry per down block; only a bare value (false, not [false]) is for every block.")]
    [InlineData("\"addition_embed_type\": \"text_image\"", "addition_embed_type", "addition_embed_type 'text_image' is not supported by DiffusersSharp")]
    [InlineData("\"addition_embed_type\": \"text_time\"", "addition_time_embed_dim", "`addition_embed_type`: 'text_time' requires `addition_time_embed_dim` be set")]
    [InlineData("\"down_block_types\": [\"DownBlock2D\", \"SimpleCrossAttnDownBlock2D\"]", "down_block_types", "unknown or unsupported down block type 'SimpleCrossAttnDownBlock2D' at index 1")]
    [InlineData("\"mid_block_type\": \"UNetMidBlock2DSimpleCrossAttn\"", "mid_block_type", "unknown or unsupported mid_block_type 'UNetMidBlock2DSimpleCrossAttn'")]
    public void BadConfigs_AreConfigErrorsNamingTheKey(string replacement, string key, string message)
    {
        var text = File.ReadAllText(Golden.Path("tiny-sd", "unet", "config.json"));
        string name = replacement[..(replacement.IndexOf(':'))];
        var lines = text.Split('\n').ToList();
        // replace the key's (possibly multi-line) value
        int start = lines.FindIndex(l => l.TrimStart().StartsWith(name, StringComparison.Ordinal));
        int end = start;
        if (lines[start].TrimEnd().EndsWith('['))
            while (!lines[end].TrimStart().StartsWith(']')) end++;
        lines.RemoveRange(start, end - start + 1);
        lines.Insert(start, "  " + replacement + ",");
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), string.Join('\n', lines));
        File.Copy(Golden.Path("tiny-sd", "unet", "diffusion_pytorch_model.safetensors"), dir.File("diffusion_pytorch_model.safetensors"));
        var e = Assert.Throws<ConfigException>(() => UNet2DConditionModel.FromPretrained(dir.Path));
        Assert.Equal(key, e.Key);
        Assert.Contains(message, e.Message);
        Assert.Contains("config.json", e.Message);
    }
}
