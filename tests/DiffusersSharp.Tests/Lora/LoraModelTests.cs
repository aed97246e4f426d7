using DiffusersSharp.Models;
using DiffusersSharp.Models.Lora;
using DiffusersSharp.Tests.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Lora;

/// <summary>
/// LoRA on the models of tiny-sd and tiny-sdxl against diffusers 0.25.1 (golden README section G): the UNet output at
/// t = 500 and the text encoders' outputs for the base model, LoRA A (diffusers format) at scale 1 and 0.5, fused at 0.7,
/// and LoRA B (kohya: convs incl. 3×3, conv_shortcut, time_emb_proj, ff, proj_in/out, text MLPs; SDXL in the SGM layout).
/// </summary>
public class LoraModelTests(ITestOutputHelper log)
{
    /// <summary>Model outputs (issue: ≤ 1e-5).</summary>
    private const double ModelTol = Tol.ModelAbs;

    internal sealed class Models : IDisposable
    {
        public required UNet2DConditionModel Unet { get; init; }
        public required CLIPTextModel TextEncoder { get; init; }
        public CLIPTextModelWithProjection? TextEncoder2 { get; init; }

        public IReadOnlyList<LoraTarget> Targets => TextEncoder2 is null
            ? [LoraTarget.ForUnet(Unet), LoraTarget.ForTextEncoder("text_encoder", TextEncoder)]
            : [LoraTarget.ForUnet(Unet), LoraTarget.ForTextEncoder("text_encoder", TextEncoder), LoraTarget.ForTextEncoder("text_encoder_2", TextEncoder2)];

        public static Models Load(bool sdxl)
        {
            string dir = Golden.Path(sdxl ? "tiny-sdxl" : "tiny-sd");
            return new Models
            {
                Unet = UNet2DConditionModel.FromPretrained(dir, "unet"),
                TextEncoder = CLIPTextModel.FromPretrained(dir, "text_encoder"),
                TextEncoder2 = sdxl ? CLIPTextModelWithProjection.FromPretrained(dir, "text_encoder_2") : null,
            };
        }

        public void Dispose()
        {
            Unet.Dispose();
            TextEncoder.Dispose();
            TextEncoder2?.Dispose();
        }
    }

    internal static string Expected(bool sdxl) => sdxl ? "tiny-sdxl-lora-expected.safetensors" : "tiny-sd-lora-expected.safetensors";
    internal static string LoraA(bool sdxl, string ext = "safetensors") => Golden.Path(sdxl ? "tiny-sdxl-lora" : "tiny-sd-lora", "diffusers", "pytorch_lora_weights." + ext);
    internal static string LoraB(bool sdxl) => Golden.Path(sdxl ? "tiny-sdxl-lora" : "tiny-sd-lora", "kohya.safetensors");

    /// <summary>The UNet at t = 500 on the recorded inputs, with the given LoRA scale (null = no cross_attention_kwargs).</summary>
    internal static Tensor UnetOut(Models m, SafetensorsLike g, bool sdxl, double? scale)
    {
        using var _ = torch.no_grad();
        using var x = g.Load("unet/x");
        using var ehs = g.Load("unet/encoder_hidden_states");
        AddedCondKwargs? added = sdxl ? new AddedCondKwargs(g.Load("unet/text_embeds"), g.Load("unet/time_ids")) : null;
        var kwargs = scale is double s ? new CrossAttentionOptions { Scale = s } : null;
        return m.Unet.Forward(x, 500L, ehs, crossAttentionKwargs: kwargs, addedCondKwargs: added).Sample;
    }

    /// <summary>Checks every recorded output of state <paramref name="state"/>; returns the largest error.</summary>
    internal static double CheckState(ITestOutputHelper log, Models m, bool sdxl, string state, double? unetScale)
    {
        using var g = new SafetensorsLike(Expected(sdxl));
        using var _ = torch.no_grad();
        double worst = 0;
        using (var o = UnetOut(m, g, sdxl, unetScale))
            worst = Math.Max(worst, SdTrace.Check(log, g, $"unet/{state}/out", o, ModelTol));
        using var ids = g.Load("text_encoder/input_ids");
        using (var te = m.TextEncoder.Forward(ids))
            worst = Math.Max(worst, SdTrace.Check(log, g, $"text_encoder/{state}/last_hidden_state", te.LastHiddenState, ModelTol));
        if (m.TextEncoder2 is { } te2)
        {
            using var o2 = te2.Forward(ids, outputHiddenStates: true);
            worst = Math.Max(worst, SdTrace.Check(log, g, $"text_encoder_2/{state}/hidden_states_penultimate", o2.HiddenStates![^2], ModelTol));
            worst = Math.Max(worst, SdTrace.Check(log, g, $"text_encoder_2/{state}/text_embeds", o2.TextEmbeds, ModelTol));
        }
        return worst;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BaseModelsMatchTheRecordedBase(bool sdxl)
    {
        using var m = Models.Load(sdxl);
        CheckState(log, m, sdxl, "base", null);
    }

    [Theory]
    [InlineData(false, "safetensors")]
    [InlineData(false, "bin")]
    [InlineData(true, "safetensors")]
    public void LoraAAtScaleOneMatchesDiffusers(bool sdxl, string ext)
    {
        using var m = Models.Load(sdxl);
        var r = LoraLoader.Load(LoraA(sdxl, ext), m.Targets);
        Assert.Equal(sdxl ? 160 : 68, r.TotalLayers); // checks.lora_a_modules_patched_as_expected
        Assert.Equal(LoraLoader.DefaultAdapterName, r.AdapterName);
        CheckState(log, m, sdxl, "lora_a_scale1", null);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LoraAAtScaleHalfMatchesDiffusers(bool sdxl)
    {
        using var m = Models.Load(sdxl);
        LoraLoader.Load(LoraA(sdxl), m.Targets);
        // the pipeline call with cross_attention_kwargs={"scale": 0.5} left the text encoders at 0.5 (encode_prompt)
        m.TextEncoder.LoraScale.Value = 0.5;
        if (m.TextEncoder2 is { } te2) te2.LoraScale.Value = 0.5;
        CheckState(log, m, sdxl, "lora_a_scale0.5", 0.5);
        Assert.Equal(0.5, m.Unet.LoraScale.Value);
        using var g = new SafetensorsLike(Expected(sdxl));
        using var again = UnetOut(m, g, sdxl, null); // a call without kwargs is back at 1.0 in the UNet
        SdTrace.Check(log, g, "unet/lora_a_scale1/out", again, ModelTol);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LoraAFusedAtPoint7MatchesDiffusers_AndUnfuseRestoresTheBaseBitForBit(bool sdxl)
    {
        using var m = Models.Load(sdxl);
        var before = m.Targets.SelectMany(t => t.Model.named_parameters().Select(p => (t.Component + "." + p.name, p.parameter.detach().clone()))).ToList();
        LoraLoader.Load(LoraA(sdxl), m.Targets);
        int fused = LoraLoader.Fuse(m.Targets, 0.7);
        Assert.Equal(sdxl ? 160 : 68, fused);
        using (var g = new SafetensorsLike(Expected(sdxl)))
        {
            // checks.fuse_weight_hand_written_bitexact: W + 0.7 · up @ down (bmm in float32)
            var layer = LoraLoader.Layers(m.Unet).Single(l => l.Path == "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q").Layer;
            using var wBefore = g.Load("fuse/module_weight_before");
            using var wAfter = g.Load("fuse/module_weight_after");
            var original = before.Single(b => b.Item1 == "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight").Item2;
            Assert.Equal(0.0, Tol.MaxAbsDiff(original, wBefore));
            double fuseErr = Tol.MaxAbsDiff(layer.Weight, wAfter);
            log.WriteLine($"fused weight vs diffusers: max abs diff {fuseErr:E3}");
            Assert.True(fuseErr <= 1e-7, $"fused weight differs by {fuseErr:E3}");
        }
        CheckState(log, m, sdxl, "lora_a_fused0.7", null);

        Assert.Equal(fused, LoraLoader.Unfuse(m.Targets));
        foreach (var (name, w) in before)
        {
            var now = m.Targets.Single(t => name.StartsWith(t.Component + ".", StringComparison.Ordinal)).Model
                .named_parameters().Single(p => t(name) == p.name).parameter;
            Assert.True(Tol.MaxAbsDiff(now, w) == 0, $"{name} is not the base weight bit for bit after unfuse");
            w.Dispose();
        }
        CheckState(log, m, sdxl, "base", null); // 0.25.1 drops the LoRA layers when fusing
        static string t(string n) => n[(n.IndexOf('.') + 1)..];
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void KohyaLoraBMatchesDiffusers(bool sdxl)
    {
        using var m = Models.Load(sdxl);
        var notes = new List<string>();
        var r = LoraLoader.Load(LoraB(sdxl), m.Targets, new LoraLoadOptions { Log = notes.Add });
        Assert.Equal(47, r.TotalLayers); // checks.lora_b_modules_patched_as_mapping
        // tiny-sd's B has one module without alpha (lora_b.mapping): diffusers' default applies, and we say so
        var noAlpha = notes.Where(n => n.Contains("has no alpha; diffusers' default applies")).ToList();
        if (sdxl) Assert.Empty(noAlpha);
        else Assert.Contains("'down_blocks_1_attentions_0_transformer_blocks_0_ff_net_2' has no alpha", Assert.Single(noAlpha));
        CheckState(log, m, sdxl, "lora_b_kohya_scale1", null);
    }

    [Fact]
    public void LoadThenUnloadIsTheBaseBitForBit_Over100Cycles()
    {
        using var m = Models.Load(false);
        using var g = new SafetensorsLike(Expected(false));
        using var baseOut = UnetOut(m, g, false, null);
        using var file = DiffusersSharp.Loading.Lora.LoraFile.Read(LoraB(false));
        long liveBefore = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 100; i++)
        {
            LoraLoader.Load(file, m.Targets);
            LoraLoader.Unload(m.Targets);
        }
        Assert.Equal(liveBefore, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        using var after = UnetOut(m, g, false, null);
        Assert.True(Tol.MaxAbsDiff(baseOut, after) == 0, "outputs changed after 100 load/unload cycles");
        LoraLoader.Load(file, m.Targets);
        using var loaded = UnetOut(m, g, false, null);
        SdTrace.Check(log, g, "unet/lora_b_kohya_scale1/out", loaded, ModelTol);
    }
}
