using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Text;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// Textual inversion on tiny-sd against diffusers 0.25.1 (golden README section J): the diffusers and A1111 formats,
/// a 3-vector embedding, the tokenizer and text encoder after loading, a 2-step run, and the errors.
/// </summary>
public class TextualInversionTests(ITestOutputHelper log)
{
    private const string Expected = "tiny-sd-textual-inversion-expected.safetensors";
    private const string Prompt = "a photo of <cat-toy> in the style of <style3>";
    private static string Ti(string file) => Golden.Path("tiny-sd-textual-inversion", file);

    private static long[] Ids(CLIPTokenizer tokenizer, string prompt) =>
        tokenizer.Call(prompt, PaddingStrategy.MaxLength, 77, truncation: true).InputIds[0];

    private static long[] GoldenIds(SafetensorsLike g, string key)
    {
        using var t = g.Load(key);
        return t.data<long>().ToArray();
    }

    /// <summary>The setup of the golden run: the single-vector safetensors file, then the 3-vector A1111 file.</summary>
    private static void LoadBoth(StableDiffusionPipelineBase pipe)
    {
        Assert.Equal(new[] { "<cat-toy>" }, pipe.LoadTextualInversion(Ti("learned_embeds.safetensors"), token: "<cat-toy>"));
        Assert.Equal(new[] { "<style3>", "<style3>_1", "<style3>_2" }, pipe.LoadTextualInversion(Ti("style3.pt"), token: "<style3>"));
    }

    [Fact]
    public void FilesReadAsDiffusersReadsThem()
    {
        using var g = new SafetensorsLike(Expected);
        using var single = TextualInversionEmbedding.Read(Ti("learned_embeds.safetensors"));
        using var bin = TextualInversionEmbedding.Read(Ti("learned_embeds.bin"));
        using var a1111 = TextualInversionEmbedding.Read(Ti("style3.pt"));
        using var folder = TextualInversionEmbedding.Read(Golden.Path("tiny-sd-textual-inversion"));
        Assert.Equal(("<cat-toy>", 1, 32), (single.Token, single.VectorCount, single.Width));
        Assert.Equal(("<cat-toy>", "<cat-toy>"), (bin.Token, bin.Key));
        Assert.Equal(("style3", "string_to_param.*", 3), (a1111.Token, a1111.Key, a1111.VectorCount)); // the token omitted: A1111's 'name'
        Assert.EndsWith("learned_embeds.safetensors", folder.Source);
        using var s = g.Load("embeddings/single");
        using var m = g.Load("embeddings/multi3");
        Assert.Equal(0.0, Tol.MaxAbsDiff(single.Vectors[0], s));
        Assert.Equal(0.0, Tol.MaxAbsDiff(bin.Vectors, single.Vectors));
        Assert.Equal(0.0, Tol.MaxAbsDiff(a1111.Vectors, m));
    }

    [Fact]
    public void TokenizerAndTextEncoderAfterLoadingMatchDiffusers()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        using var g = new SafetensorsLike(Expected);
        Assert.Equal(GoldenIds(g, "tokenizer/base/input_ids"), Ids(pipe.Tokenizer, Prompt));
        using var before = pipe.TextEncoder.GetInputEmbeddings().clone();

        LoadBoth(pipe);

        Assert.Equal(1004, pipe.Tokenizer.Count);
        Assert.Equal(1004, pipe.TextEncoder.Config.VocabSize);
        Assert.Equal(new[] { 1000, 1001, 1002, 1003 },
            new[] { "<cat-toy>", "<style3>", "<style3>_1", "<style3>_2" }.Select(pipe.Tokenizer.ConvertTokenToId));
        string converted = pipe.MaybeConvertPrompt([Prompt])[0];
        Assert.Equal("a photo of <cat-toy> in the style of <style3> <style3>_1 <style3>_2", converted);
        Assert.Equal(["a</w>", "pho", "to</w>", "of</w>", "<cat-toy>", "in</w>", "the</w>", "st", "y", "le</w>", "of</w>", "<style3>",
            "<style3>_1", "<style3>_2"], pipe.Tokenizer.Tokenize(converted));
        long[] ids = Ids(pipe.Tokenizer, converted);
        Assert.Equal(GoldenIds(g, "tokenizer/loaded/input_ids"), ids);
        Assert.Equal(GoldenIds(g, "tokenizer/loaded_unconverted/input_ids"), Ids(pipe.Tokenizer, Prompt));

        using var weight = pipe.TextEncoder.GetInputEmbeddings();
        Assert.Equal(new long[] { 1004, 32 }, weight.shape);
        using var addedRows = weight[1000..];
        SdTrace.Check(log, g, "text_encoder/token_embedding_rows_added", addedRows, 0);
        using var oldRows = weight[..1000];
        Assert.Equal(0.0, Tol.MaxAbsDiff(oldRows, before));

        using var noGrad = torch.no_grad();
        using var input = torch.tensor(ids, new long[] { 1, 77 });
        using var output = pipe.TextEncoder.Forward(input);
        SdTrace.Check(log, g, "text_encoder/loaded/last_hidden_state", output.LastHiddenState, Tol.ModelAbs);
    }

    [Fact]
    public void TwoStepRunWithBothEmbeddingsMatchesDiffusers()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        LoadBoth(pipe);
        using var trace = new SdTrace(pipe);
        using var result = pipe.Generate(Prompt, "", guidanceScale: 7.5, numInferenceSteps: 2, height: 64, width: 64, seed: 0,
            outputType: OutputType.Np);
        using var g = new SafetensorsLike(Expected);
        const string p = "pipeline/ti/";
        using (var states = torch.cat(new[] { trace.One("negative_prompt_embeds"), trace.One("prompt_embeds") }))
            SdTrace.Check(log, g, p + "unet_encoder_hidden_states", states, Tol.ModelAbs);
        SdTrace.Check(log, g, p + "latent_noise", trace.One("initial_latents"), 0);
        using (var first = trace.Stacked("unet_output")[0]) SdTrace.Check(log, g, p + "unet_output_step0", first, Tol.ModelAbs);
        using (var after = trace.Stacked("latents_after_step")) SdTrace.Check(log, g, p + "latents_after_step", after, 1e-4);
        SdTrace.Check(log, g, p + "vae_decoded", trace.One("vae_decoded"), 1e-4);
        StableDiffusionTaesdTests.AllWithinOneLevel(log, g, p + "images", result.Array!);
    }

    [Fact]
    public void SeveralAtOnce_ListFormEqualsOneByOne()
    {
        using var one = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        LoadBoth(one);
        using var list = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        var added = list.LoadTextualInversion([Ti("learned_embeds.bin"), Ti("style3.pt")], ["<cat-toy>", "<style3>"]);
        Assert.Equal(new[] { "<cat-toy>", "<style3>", "<style3>_1", "<style3>_2" }, added);
        using var a = one.TextEncoder.GetInputEmbeddings();
        using var b = list.TextEncoder.GetInputEmbeddings();
        Assert.Equal(0.0, Tol.MaxAbsDiff(a, b));
        // tokens omitted: the files' own names
        using var named = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        Assert.Equal(new[] { "<cat-toy>", "style3", "style3_1", "style3_2" },
            named.LoadTextualInversion([Ti("learned_embeds.safetensors"), Ti("style3.pt")]));
        Assert.Equal("a style3 style3_1 style3_2 cat", named.MaybeConvertPrompt(["a style3 cat"])[0]);
        var e = Assert.Throws<DiffusersException>(() => named.LoadTextualInversion([Ti("style3.pt"), Ti("style3.pt")], ["<a>", "<b>", "<c>"]));
        Assert.Equal("You have passed a list of models of length 2, and list of tokens of length 3 Make sure both lists have the same length.", e.Message);
    }

    [Fact]
    public void ATokenAlreadyInTheVocabulary_IsDiffusersErrorNamingTheFile()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        pipe.LoadTextualInversion(Ti("learned_embeds.safetensors"), token: "<cat-toy>");
        var e = Assert.Throws<DiffusersException>(() => pipe.LoadTextualInversion(Ti("learned_embeds.bin"), token: "<cat-toy>"));
        Assert.EndsWith("Token <cat-toy> already in tokenizer vocabulary. Please choose a different token name or remove <cat-toy> and embedding from the tokenizer and text encoder.", e.Message);
        Assert.StartsWith(Ti("learned_embeds.bin"), e.Message);
        Assert.Equal(("<cat-toy>", Ti("learned_embeds.bin")), (e.Key, e.FilePath));
        // a vocabulary word is taken as well; nothing changed
        var word = Assert.Throws<DiffusersException>(() => pipe.LoadTextualInversion(Ti("learned_embeds.bin"), token: "a</w>"));
        Assert.Contains("Token a</w> already in tokenizer vocabulary.", word.Message);
        Assert.Equal(1001, pipe.Tokenizer.Count);
        Assert.Equal(1001, pipe.TextEncoder.Config.VocabSize);
        // duplicates in one call
        var dup = Assert.Throws<DiffusersException>(() => pipe.LoadTextualInversion([Ti("style3.pt"), Ti("style3.pt")], ["<s>", "<s>"]));
        Assert.Equal("You have passed a list of tokens that contains duplicates: ['<s>', '<s>']", dup.Message);
    }

    [Fact]
    public void AnEmbeddingOfAnotherWidth_IsAnErrorNamingFileAndKey_AndChangesNothing()
    {
        using var dir = new TempDir();
        string path = dir.File("wide.safetensors");
        using (var t = torch.ones(2, 768))
            SafetensorsFile.Save(path, new Dictionary<string, Tensor> { ["<wide>"] = t });
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        var e = Assert.Throws<DiffusersException>(() =>
            pipe.LoadTextualInversion([Ti("learned_embeds.safetensors"), path], ["<cat-toy>", null]));
        Assert.StartsWith($"{path}, key '<wide>': Loaded embeddings are of incorrect shape. Expected each textual inversion embedding to be of shape 32, but are 768", e.Message);
        Assert.Equal("<wide>", e.Key);
        Assert.False(pipe.Tokenizer.ContainsToken("<cat-toy>"));   // the whole call is refused
        Assert.Equal(1000, pipe.TextEncoder.Config.VocabSize);
    }

    [Fact]
    public void UnreadableOrUnexpectedFiles_AreClearErrors()
    {
        using var dir = new TempDir();
        string two = dir.File("two.safetensors");
        using (var a = torch.ones(32))
        using (var b = torch.ones(32))
            SafetensorsFile.Save(two, new Dictionary<string, Tensor> { ["clip_l"] = a, ["clip_g"] = b });
        var e = Assert.Throws<DiffusersException>(() => TextualInversionEmbedding.Read(two));
        Assert.Contains("Loaded state dictonary is incorrect", e.Message);
        Assert.Contains("pass the key to load", e.Message);
        var noToken = Assert.Throws<DiffusersException>(() => TextualInversionEmbedding.Read(two, key: "clip_g"));
        Assert.Contains("key 'clip_g'", noToken.Message);
        var missing = Assert.Throws<DiffusersException>(() => TextualInversionEmbedding.Read(two, "<x>", key: "clip_h"));
        Assert.Contains("has no key 'clip_h'", missing.Message);
        var notFound = Assert.Throws<DiffusersException>(() => TextualInversionEmbedding.Read(dir.File("none.pt")));
        Assert.Contains("Textual inversion file not found", notFound.Message);
        File.WriteAllText(dir.File("junk.pt"), "not an embedding");
        var junk = Assert.ThrowsAny<DiffusersException>(() => TextualInversionEmbedding.Read(dir.File("junk.pt")));
        Assert.Contains("junk.pt", junk.Message);
        var tokenizer = CLIPTokenizer.FromPretrained(StableDiffusionPipelineTests.Model, "tokenizer");
        tokenizer.AddTokens("<new>");
        var save = Assert.Throws<DiffusersException>(() => tokenizer.SavePretrained(dir.File("tok")));
        Assert.Contains("<new>", save.Message);
    }

    /// <summary>
    /// SDXL has no golden data: its two encoders each take their own entry of one file (clip_l, clip_g). Composed here
    /// from the SD case: two independent tiny-sd (tokenizer, text encoder) pairs, each given the golden vectors through a
    /// keyed entry, must each give diffusers' tokenizer ids and encoder output; a bad second pair changes neither.
    /// </summary>
    [Fact]
    public void TwoEncoderPairs_EachLoadTheirEntry_AsTheSdCase()
    {
        using var dir = new TempDir();
        string sdxl = dir.File("sdxl-style3.safetensors");
        using var g = new SafetensorsLike(Expected);
        using (var multi = g.Load("embeddings/multi3"))
        using (var narrow = torch.zeros(3, 16))
            SafetensorsFile.Save(sdxl, new Dictionary<string, Tensor> { ["clip_l"] = multi, ["clip_g"] = multi, ["clip_narrow"] = narrow });

        var pairs = Enumerable.Range(0, 2).Select(_ => (
            Tokenizer: CLIPTokenizer.FromPretrained(StableDiffusionPipelineTests.Model, "tokenizer"),
            Encoder: CLIPTextModel.FromPretrained(StableDiffusionPipelineTests.Model, "text_encoder"))).ToList();
        try
        {
            using var cat1 = TextualInversionEmbedding.Read(Ti("learned_embeds.safetensors"));
            using var cat2 = TextualInversionEmbedding.Read(Ti("learned_embeds.bin"));
            using var l = TextualInversionEmbedding.Read(sdxl, "<style3>", key: "clip_l");
            using var gEntry = TextualInversionEmbedding.Read(sdxl, "<style3>", key: "clip_g");
            using var bad = TextualInversionEmbedding.Read(sdxl, "<style3>", key: "clip_narrow");

            var e = Assert.Throws<DiffusersException>(() => TextualInversion.Load([
                (pairs[0].Tokenizer, pairs[0].Encoder, [cat1, l]), (pairs[1].Tokenizer, pairs[1].Encoder, [cat2, bad])]));
            Assert.Equal("clip_narrow", e.Key);
            Assert.Equal($"{sdxl}, key 'clip_narrow': Loaded embeddings are of incorrect shape. Expected each textual inversion embedding to be of shape 32, but are 16: "
                         + "the text encoder's hidden_size is 32, so this embedding was trained for another text encoder", e.Message);
            Assert.All(pairs, p => Assert.Equal(1000, p.Tokenizer.Count));

            var added = TextualInversion.Load([
                (pairs[0].Tokenizer, pairs[0].Encoder, [cat1, l]), (pairs[1].Tokenizer, pairs[1].Encoder, [cat2, gEntry])]);
            Assert.All(added, a => Assert.Equal(new[] { "<cat-toy>", "<style3>", "<style3>_1", "<style3>_2" }, a));
            using var noGrad = torch.no_grad();
            foreach (var (tokenizer, encoder) in pairs)
            {
                long[] ids = Ids(tokenizer, TextualInversion.MaybeConvertPrompt(Prompt, tokenizer));
                Assert.Equal(GoldenIds(g, "tokenizer/loaded/input_ids"), ids);
                using var input = torch.tensor(ids, new long[] { 1, 77 });
                using var output = encoder.Forward(input);
                SdTrace.Check(log, g, "text_encoder/loaded/last_hidden_state", output.LastHiddenState, Tol.ModelAbs);
            }
        }
        finally
        {
            foreach (var p in pairs) p.Encoder.Dispose();
        }
    }
}
