using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// UNet2DConditionModel config variants the golden tiny models lack (SD 2.x head lists and linear projection, the x4
/// upscaler's class embedding and per-block only_cross_attention, LCM's timestep_cond, SDXL's per-layer depths, the
/// class_embed_type kinds, scale_shift, other activations and kernels, encoder_hid_dim, no mid block, both attention masks)
/// against golden/model-transcripts-unet2dcond: a numpy transcription of diffusers 0.25.1's forward, validated on the
/// golden tiny-sd, tiny-sdxl and tiny-sdxl-refiner UNets to 1.3e-6 (its README). Each variant loads through
/// <see cref="UNet2DConditionModel.FromPretrained"/> from a diffusers-format folder; its pass in float64 must match the
/// transcript (computed in float64) within <see cref="Float64Abs"/>, its float32 pass within <see cref="Tol.ModelAbs"/>
/// or twice the case's recorded float32 noise, whichever is larger.
/// </summary>
public class UNet2DConditionModelTranscriptTests
{
    private static readonly TranscriptFolder Transcript = new("model-transcripts-unet2dcond", "expected");

    /// <summary>
    /// The expected outputs are float64 maths rounded to float32 (≤ 1.2e-7 of rounding at |out| ≤ 3.5): a float64 pass
    /// that computes what diffusers computes lands within 1e-6; a wrong head count, a missed option moves it by 1e-3 or more.
    /// </summary>
    private const double Float64Abs = 1e-6;

    /// <summary>
    /// One input row broadcast against the same row repeated per sample: the same float64 maths, only the matrix kernels'
    /// summation order may differ (a few ulps of |out| ≤ 4, 1e-15); a row mixed up between samples moves it by 1e-4 or more.
    /// </summary>
    private const double SameMathsFloat64Abs = 1e-12;

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var variant in Transcript.Root.GetProperty("variants").EnumerateObject())
            foreach (var c in variant.Value.GetProperty("cases").EnumerateObject())
                data.Add(variant.Name, c.Name);
        return data;
    }

    [Fact]
    public void EveryVariantFolderHasCases()
    {
        var variants = Transcript.AssertEveryVariantFolderHasCases(Cases().Select(row => (string)row[0]));
        Assert.Equal(18, variants.Count);
    }

    /// <summary>diffusers turns a Python float timestep into a float64 tensor: 250.5 as a number gives the tensor case's output.</summary>
    [Fact]
    public void FractionalTimestepAsANumberMatchesTheTranscript()
    {
        using var _ = torch.no_grad();
        using var unet = UNet2DConditionModel.FromPretrained(Transcript.Path("lcm-time-cond"));
        using var golden = Transcript.Open();
        const string Prefix = "lcm-time-cond/t250_5/";
        Assert.Equal(250.5f, golden.Load(Prefix + "timestep").item<float>());
        using var output = unet.Forward(golden.Load(Prefix + "sample"), 250.5, golden.Load(Prefix + "encoder_hidden_states"),
            timestepCond: golden.Load(Prefix + "timestep_cond")).Sample;
        using var expected = golden.Load(Prefix + "out");
        Tol.Close(output, expected, Tol.ModelAbs, "lcm-time-cond at t = 250.5");
    }

    [Theory, MemberData(nameof(Cases))]
    public void VariantInFloat64MatchesDiffusersTranscript(string variant, string caseName)
    {
        double diff = MaxAbsDiff(variant, caseName, ScalarType.Float64);
        Assert.True(diff <= Float64Abs, $"{variant} {caseName} (float64): max |actual - expected| = {diff:E3} > {Float64Abs:E1}");
    }

    /// <summary>
    /// float32 rounding alone moves the tiny variants by up to 4.7e-5 (sd1-lists/t500: 4-channel LayerNorms of nearly
    /// constant tokens amplify it); make.py measures it per case by running the same pass in numpy float32.
    /// </summary>
    [Theory, MemberData(nameof(Cases))]
    public void VariantInFloat32MatchesDiffusersTranscript(string variant, string caseName) =>
        AssertFloat32(variant, caseName, channelsLast: false);

    /// <summary>The channels-last pass (the default for bf16 / fp16 weights) takes other kernels: the same cases through it.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void VariantInFloat32ChannelsLastMatchesDiffusersTranscript(string variant, string caseName) =>
        AssertFloat32(variant, caseName, channelsLast: true);

    private static void AssertFloat32(string variant, string caseName, bool channelsLast)
    {
        double noise = Transcript.Root.GetProperty("variants").GetProperty(variant).GetProperty("cases").GetProperty(caseName)
            .GetProperty("float32_noise").GetDouble();
        double tol = Math.Max(Tol.ModelAbs, 2 * noise);
        double diff = MaxAbsDiff(variant, caseName, ScalarType.Float32, channelsLast);
        Assert.True(diff <= tol, $"{variant} {caseName} (float32{(channelsLast ? ", channels-last" : "")}): max |actual - expected| = {diff:E3} > {tol:E1}");
    }

    /// <summary>
    /// diffusers' UNet forward turns an encoder_attention_mask of (B, 1, S) into the bias (B, 1, 1, S), which
    /// prepare_attention_mask spreads over the heads to the (B, heads, 1, S) of the (B, S) mask: the same output as the
    /// masked cases (several heads per block in sd2-linear-headlist-upcast).
    /// </summary>
    [Theory]
    [InlineData("sd2-linear-headlist-upcast")]
    [InlineData("sd1-lists")]
    public void AnEncoderAttentionMaskOfBatchOneAndTokensGivesTheTwoDimensionalMasksOutput(string variant)
    {
        using (var golden = Transcript.Open())
            Assert.Equal([2L, 5], golden.Load($"{variant}/masked/encoder_attention_mask").shape);
        double diff = MaxAbsDiff(variant, "masked", ScalarType.Float64,
            edit: (key, t) => key == "encoder_attention_mask" ? t!.unsqueeze(1) : t);
        Assert.True(diff <= Float64Abs, $"{variant} masked with a (B, 1, S) mask: max |actual - expected| = {diff:E3}");
    }

    /// <summary>
    /// A timestep_cond of one row (time_cond_proj_dim,): diffusers' cond_proj gives one row, which torch adds to every
    /// sample's time projection. The first sample keeps its transcript output (its own row); the whole batch gives what
    /// that row repeated per sample gives.
    /// </summary>
    [Fact]
    public void AOneDimensionalTimestepCondServesEverySample()
    {
        AssertOneRowServesTheBatch("lcm-time-cond", "timestep_cond");
    }

    /// <summary>
    /// A class vector of one row for the vector kinds (projection: a TimestepEmbedding; identity: added as it is): its
    /// embedding broadcasts onto the batch in diffusers, as a timestep_cond row does.
    /// </summary>
    [Theory]
    [InlineData("class-projection")]
    [InlineData("class-identity")]
    public void AOneDimensionalClassVectorServesEverySample(string variant)
    {
        AssertOneRowServesTheBatch(variant, "class_labels");
        // three class vectors for two samples fail to broadcast in torch
        var e = Assert.Throws<ArgumentException>(() => Output(variant, "t500", ScalarType.Float32, false,
            (key, t) => key == "class_labels" ? torch.cat([t!, t![..1]]) : t).Dispose());
        Assert.Equal($"class_labels of shape [3, {(variant == "class-identity" ? 16 : 6)}] do not fit a batch of 2; pass one class vector or one per sample (Parameter 'class_labels')", e.Message);
    }

    /// <summary>With class_embeddings_concat, diffusers' torch.cat of (B, D) and a (D,) or (1, D) class embedding fails.</summary>
    [Fact]
    public void ConcatenatedClassEmbeddingsNeedOneClassVectorPerSample()
    {
        var e = Assert.Throws<ArgumentException>(() => Output("class-simple-projection-concat", "t500", ScalarType.Float32, false,
            (key, t) => key == "class_labels" ? t![0] : t).Dispose());
        Assert.Equal("UNet2DConditionModel: with class_embeddings_concat each sample's class embedding is joined to its time embedding, so class_labels " +
                     "need one per sample (batch 2); they give class embeddings of shape [16] (torch.cat fails in diffusers) (Parameter 'class_labels')", e.Message);
    }

    private static void AssertOneRowServesTheBatch(string variant, string key)
    {
        using var _ = torch.no_grad();
        using var oneRow = Output(variant, "t500", ScalarType.Float64, false, (k, t) => k == key ? t![0] : t);
        using var repeated = Output(variant, "t500", ScalarType.Float64, false, (k, t) => k == key ? t![0].expand(t.shape).contiguous() : t);
        using var golden = Transcript.Open();
        using var expected = golden.Load($"{variant}/t500/out");
        double first = Tol.MaxAbsDiff(oneRow[0], expected[0]);
        Assert.True(first <= Float64Abs, $"{variant}: the first sample with one {key} row: max |actual - expected| = {first:E3}");
        Assert.True(Tol.MaxAbsDiff(oneRow[1], expected[1]) > 1e-4, $"{variant}: the second sample's own {key} row must matter");
        Tol.Close(oneRow, repeated, SameMathsFloat64Abs, $"{variant}: one {key} row against it repeated per sample");
    }

    private static double MaxAbsDiff(string variant, string caseName, ScalarType dtype, bool channelsLast = false,
        Func<string, Tensor?, Tensor?>? edit = null)
    {
        using var _ = torch.no_grad();
        using var output = Output(variant, caseName, dtype, channelsLast, edit);
        Assert.Equal(dtype, output.dtype);
        using var golden = Transcript.Open();
        using var expected = golden.Load($"{variant}/{caseName}/out");
        return Tol.MaxAbsDiff(output, expected);
    }

    /// <summary>The variant's output for the case's inputs in <paramref name="dtype"/>, each input passed through <paramref name="edit"/> (key, tensor or null).</summary>
    private static Tensor Output(string variant, string caseName, ScalarType dtype, bool channelsLast,
        Func<string, Tensor?, Tensor?>? edit = null)
    {
        using var _ = torch.no_grad();
        using var unet = UNet2DConditionModel.FromPretrained(Transcript.Path(variant));
        unet.to(dtype);
        unet.ChannelsLast = channelsLast;
        using var golden = Transcript.Open();
        string prefix = $"{variant}/{caseName}/";
        Tensor? Input(string key)
        {
            var t = !golden.Keys.Contains(prefix + key) ? null
                : golden.Load(prefix + key) is var g && g.is_floating_point() ? g.to(dtype) : g;
            return edit is null ? t : edit(key, t);
        }
        using var sample = Input("sample")!;
        using var timestep = golden.Load(prefix + "timestep"); // float32 or int64, as diffusers gets it
        using var ehs = Input("encoder_hidden_states")!;
        using var classLabels = Input("class_labels");
        using var timestepCond = Input("timestep_cond");
        using var textEmbeds = Input("text_embeds");
        using var timeIds = Input("time_ids");
        using var mask = Input("encoder_attention_mask");
        using var selfMask = Input("attention_mask");
        var added = textEmbeds is null ? null : new AddedCondKwargs(textEmbeds, timeIds);
        return unet.Forward(sample, timestep, ehs, classLabels: classLabels, timestepCond: timestepCond,
            attentionMask: selfMask, addedCondKwargs: added, encoderAttentionMask: mask).Sample;
    }
}
