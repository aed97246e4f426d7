using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// IP-Adapter on the tiny SD UNet against diffusers 0.25.1's <c>_load_ip_adapter_weights</c> and forward with
/// <c>added_cond_kwargs={"image_embeds": …}</c> (tests/golden/ip-adapter): basic (ImageProjection), plus (Resampler, its
/// keys converted) and full face (MLPProjection), from .bin and .safetensors files, and set_ip_adapter_scale.
/// </summary>
public class IPAdapterUNetTests
{
    private const string Expected = "ip-adapter/ip-adapter-expected.safetensors";

    private static Tensor G(string key) => Golden.Tensor(Expected, key);

    private static UNet2DConditionModel Loaded(string file)
    {
        var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), subfolder: "unet");
        using var w = IPAdapterFile.Read(Golden.Path("ip-adapter", file));
        unet.LoadIPAdapter(w.Path, w.ImageProj, w.IPAdapter);
        return unet;
    }

    [Theory]
    [InlineData("basic", "ip-adapter-basic.bin")]
    [InlineData("basic", "ip-adapter-basic.safetensors")]
    [InlineData("plus", "ip-adapter-plus.bin")]
    [InlineData("plus", "ip-adapter-plus.safetensors")]
    [InlineData("full", "ip-adapter-full.safetensors")]
    public void TheUNetWithTheAdapterMatchesDiffusers(string name, string file)
    {
        using var _ = torch.no_grad();
        using var unet = Loaded(file);
        var embeds = G($"unet/{name}/image_embeds");
        Tol.Close(unet.IPAdapterImageProjection!.Forward(embeds), G($"unet/{name}/projected"), Tol.ModelAbs, "projection");
        var o = unet.Forward(G("unet/sample"), 500, G("unet/encoder_hidden_states"), addedCondKwargs: new AddedCondKwargs(ImageEmbeds: embeds)).Sample;
        Tol.Close(o, G($"unet/{name}/out"), Tol.ModelAbs, name);
        Assert.True(Tol.MaxAbsDiff(o, G("unet/none/out")) > 1e-3, "the adapter changes the output");
    }

    [Fact]
    public void SetIPAdapterScaleWeighsTheImageAttention()
    {
        using var _ = torch.no_grad();
        using var unet = Loaded("ip-adapter-basic.safetensors");
        unet.SetIPAdapterScale(0.5);
        var o = unet.Forward(G("unet/sample"), 500, G("unet/encoder_hidden_states"), addedCondKwargs: new AddedCondKwargs(ImageEmbeds: G("unet/basic/image_embeds"))).Sample;
        Tol.Close(o, G("unet/basic/out_scale_0.5"), Tol.ModelAbs);
    }

    [Fact]
    public void WithoutImageEmbedsTheForwardIsAClearError()
    {
        using var unet = Loaded("ip-adapter-basic.bin");
        var e = Assert.Throws<ArgumentException>(() => unet.Forward(G("unet/sample"), 500, G("unet/encoder_hidden_states")));
        Assert.Equal("UNet2DConditionModel: an IP-Adapter is loaded (encoder_hid_dim_type 'ip_image_proj'), which requires added_cond_kwargs image_embeds (Parameter 'addedCondKwargs')", e.Message);
    }

    [Fact]
    public void AMissingOrMisshapenAttentionWeightIsAnErrorNamingTheFileAndKey()
    {
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), subfolder: "unet");
        using var w = IPAdapterFile.Read(Golden.Path("ip-adapter", "ip-adapter-basic.safetensors"));
        var missing = new Dictionary<string, Tensor>(w.IPAdapter);
        missing.Remove("11.to_v_ip.weight");
        var e = Assert.Throws<WeightsException>(() => unet.LoadIPAdapter(w.Path, w.ImageProj, missing));
        Assert.Equal($"{w.Path}: ip_adapter key '11.to_v_ip.weight' is missing (the weights of mid_block.attentions.0.transformer_blocks.0.attn2; this UNet has 6 cross-attentions, keys 1 to 11)", e.Message);
        Assert.Equal("ip_adapter.11.to_v_ip.weight", e.Key);
        var bad = new Dictionary<string, Tensor>(w.IPAdapter) { ["3.to_k_ip.weight"] = torch.zeros(64, 16) };
        e = Assert.Throws<WeightsException>(() => unet.LoadIPAdapter(w.Path, w.ImageProj, bad));
        Assert.Equal($"{w.Path}: ip_adapter key '3.to_k_ip.weight' has shape [64, 16], down_blocks.1.attentions.1.transformer_blocks.0.attn2 needs [64, 32] (its width, the UNet's cross_attention_dim)", e.Message);
        Assert.Null(unet.IPAdapterImageProjection);
    }
}
