using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using Image = DiffusersSharp.Imaging.Image;

namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// Checks <c>generate --preview-every 1</c>: one preview per step, <c>o.step&lt;k&gt;.png</c>, each the tiny TAESD's decode of the
/// latents the same run (made in-process) holds after step k, and none after the last step.
/// </summary>
internal static class CliPreviews
{
    /// <summary>The tiny AutoencoderTiny folder the previews are decoded with.</summary>
    public static string Taesd => Golden.Path("tiny-taesd");

    /// <summary>
    /// Runs <c>generate</c> with <paramref name="args"/> and <c>-o o.png</c> in <paramref name="dir"/> (the args hold the preview
    /// options), checks it names <paramref name="vaeLabel"/> as the preview VAE, then compares each preview with the tiny
    /// TAESD's decode of the latents that <paramref name="runInProcess"/> (the same generation, handed the step-end callback)
    /// holds after each step. <paramref name="steps"/> is how many steps the run takes.
    /// </summary>
    public static void AssertEachStepIsPreviewed(TempDir dir, string[] args, string vaeLabel, int steps, Action<StepEndCallback> runInProcess)
    {
        var (code, stdout, stderr) = CliRun.Run([.. args, "-o", dir.File("o.png")]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"previews: every 1 step(s) with {vaeLabel} → {dir.File("o.step1.png")}", stdout);
        Assert.True(File.Exists(dir.File("o.png")));

        using var taesd = AutoencoderTiny.FromPretrained(Taesd);
        var preview = new TaesdPreview(taesd);
        var expected = new List<Image>();
        runInProcess((_, _, tensors) => expected.Add(preview.Preview(tensors[DenoisingContext.LatentsKey])));
        Assert.Equal(steps, expected.Count);
        for (int k = 1; k <= steps; k++)
        {
            string file = dir.File($"o.step{k}.png");
            Assert.True(File.Exists(file), $"{file} was not written");
            var written = Image.Load(file);
            Assert.Equal((expected[k - 1].Width, expected[k - 1].Height, 3), (written.Width, written.Height, written.Channels));
            Assert.True(expected[k - 1].Pixels.SequenceEqual(written.Pixels), $"o.step{k}.png is not the TAESD decode of step {k}'s latents");
        }
        Assert.False(File.Exists(dir.File($"o.step{steps + 1}.png")));
        if (steps > 1)
            Assert.False(expected[0].Pixels.SequenceEqual(expected[^1].Pixels), "the first and last steps' previews are the same image");
    }
}
