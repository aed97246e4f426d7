using DiffusersSharp.Cli;
using DiffusersSharp.Loading;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Cli;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Text;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// SDXL textual inversion (no golden data: by composition with the SD case of section J). The embedding is the golden
/// 3-vector A1111 embedding (<c>embeddings/multi3</c>, [3, 32]) as <c>clip_g</c> and its first 16 columns as <c>clip_l</c>,
/// in the SDXL file layout; the rows added to each encoder must equal the file's, and the prompt encoding must equal the
/// encoders run on the converted prompt.
/// </summary>
public class StableDiffusionXLTextualInversionTests(ITestOutputHelper log)
{
    private const string Token = "<style3>";

    /// <summary>Writes the SDXL embedding file (named after the token, as A1111 names them) into <paramref name="dir"/>.</summary>
    private static (string Path, Tensor ClipL, Tensor ClipG) WriteFile(TempDir dir, int clipLWidth = 16)
    {
        var g = Golden.Tensor("tiny-sd-textual-inversion-expected.safetensors", "embeddings/multi3");
        var l = g.narrow(1, 0, clipLWidth).contiguous();
        string path = dir.File(Token + ".safetensors");
        SafetensorsFile.Save(path, new Dictionary<string, Tensor> { ["clip_l"] = l, ["clip_g"] = g });
        return (path, l, g);
    }

    [Fact]
    public void BothEncodersGetTheFilesRowsAndThePromptIsEncodedWithThem()
    {
        using var dir = new TempDir();
        var (path, clipL, clipG) = WriteFile(dir);
        using var pipe = StableDiffusionXLPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        using var before1 = pipe.TextEncoder!.GetInputEmbeddings().clone();
        using var before2 = pipe.TextEncoder2.GetInputEmbeddings().clone();

        var added = pipe.LoadTextualInversion(path);   // the token: the file's name

        Assert.Equal(new[] { Token, Token + "_1", Token + "_2" }, added);
        foreach (var (tokenizer, encoder, before, rows) in new[]
                 {
                     (pipe.Tokenizer!, (DiffusersSharp.Models.ICLIPTextEncoder)pipe.TextEncoder, before1, clipL),
                     (pipe.Tokenizer2, pipe.TextEncoder2, before2, clipG),
                 })
        {
            Assert.Equal(new[] { 1000, 1001, 1002 }, added.Select(tokenizer.ConvertTokenToId));
            using var weight = encoder.GetInputEmbeddings();
            Assert.Equal(1003, weight.shape[0]);
            Assert.Equal(0.0, Tol.MaxAbsDiff(weight[1000..], rows));
            Assert.Equal(0.0, Tol.MaxAbsDiff(weight[..1000], before));
        }

        const string prompt = "a photo in the style of <style3>";
        using var embeds = pipe.EncodePrompt(prompt, doClassifierFreeGuidance: false);
        using var noGrad = torch.no_grad();
        string converted = "a photo in the style of <style3> <style3>_1 <style3>_2";
        Assert.Equal(converted, TextualInversion.MaybeConvertPrompt(prompt, pipe.Tokenizer2));
        using var ids1 = pipe.Tokenizer!.Call([converted], PaddingStrategy.MaxLength, 77, truncation: true).InputIdsTensor(CPU);
        using var ids2 = pipe.Tokenizer2.Call([converted], PaddingStrategy.MaxLength, 77, truncation: true).InputIdsTensor(CPU);
        Assert.Equal(new long[] { 1000, 1001, 1002 }, ids2[0].data<long>().ToArray().Where(i => i >= 1000));
        using var o1 = pipe.TextEncoder.Forward(ids1, outputHiddenStates: true);
        using var o2 = pipe.TextEncoder2.Forward(ids2, outputHiddenStates: true);
        using var expected = torch.cat(new[] { o1.HiddenStates![^2], o2.HiddenStates![^2] }, -1);
        double err = Tol.MaxAbsDiff(embeds.PromptEmbeds, expected);
        log.WriteLine($"prompt embeds vs the encoders on the converted prompt: {err:E3}");
        Assert.Equal(0.0, err);
        Assert.Equal(0.0, Tol.MaxAbsDiff(embeds.PooledPromptEmbeds, o2.TextEmbeds));
    }

    [Fact]
    public void TheRefinerTakesOnlyClipG_AndAWrongWidthNamesTheFileAndKey()
    {
        using var dir = new TempDir();
        var (path, _, clipG) = WriteFile(dir);
        using var refiner = StableDiffusionXLImg2ImgPipeline.FromPretrained(StableDiffusionXLPipelineTests.Refiner);
        Assert.Equal(new[] { "<r>", "<r>_1", "<r>_2" }, refiner.LoadTextualInversion(path, "<r>"));
        using var w = refiner.TextEncoder2.GetInputEmbeddings();
        Assert.Equal(0.0, Tol.MaxAbsDiff(w[1000..], clipG));

        using var bad = new TempDir();
        var (badPath, _, _) = WriteFile(bad, clipLWidth: 24);
        using var pipe = StableDiffusionXLPipeline.FromPretrained(StableDiffusionXLPipelineTests.Base);
        var e = Assert.Throws<DiffusersException>(() => pipe.LoadTextualInversion(badPath));
        Assert.Contains("Expected each textual inversion embedding to be of shape 16, but are 24", e.Message);
        Assert.Equal((badPath, "clip_l"), (e.FilePath, e.Key));
        Assert.Equal(1000, pipe.Tokenizer2.Count);   // nothing changed
    }

    [Fact]
    public void TheCliLoadsAnSdxlEmbedding()
    {
        using var dir = new TempDir();
        var (path, _, _) = WriteFile(dir);
        var (code, stdout, stderr) = CliRun.Run("generate", "-m", StableDiffusionXLPipelineTests.Base, "--prompt", "a <s> cat",
            "--embedding", path + ":<s>", "--steps", "1", "--width", "32", "--height", "32", "--seed", "0", "-o", dir.File("o.png"));
        Assert.True(code == CliApp.Ok, stderr);
        Assert.Contains("textual inversion: <s>, <s>_1, <s>_2", stdout);
    }
}
