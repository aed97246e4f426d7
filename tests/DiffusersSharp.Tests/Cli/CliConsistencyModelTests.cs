using System.Text.Json;
using DiffusersSharp.Cli;
using DiffusersSharp.Imaging;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Cli;

/// <summary>
/// <c>diffusers generate</c> on a ConsistencyModelPipeline folder (tests/golden/tiny-consistency): <c>--steps</c> or
/// <c>--timesteps</c>, <c>--class-label</c> given (one per image) or drawn from the seed, and <c>--batch</c> give
/// diffusers 0.25.1's images of tests/golden/consistency-models (the cases of its json: seed, labels, steps or timesteps),
/// within the library test's tolerance; wrong label counts and names are refused.
/// </summary>
public class CliConsistencyModelTests
{
    private static string Model => Golden.Path("tiny-consistency");

    private static JsonElement Case(string run) =>
        Golden.Json("consistency-models/consistency-expected.json").RootElement.GetProperty("cases").GetProperty(run);

    [Theory]
    [InlineData("one-step", "ConsistencyModelPipeline · CMStochasticIterativeScheduler · 1 steps · batch 2 · classes 3, 7 · seed 0 · Float32")]
    [InlineData("timesteps-22-0", "ConsistencyModelPipeline · CMStochasticIterativeScheduler · 2 steps (timesteps 22, 0) · batch 1 · classes 5 · seed")]
    [InlineData("three-steps", "ConsistencyModelPipeline · CMStochasticIterativeScheduler · 3 steps · batch 2 · classes 0, 9 · seed")]
    [InlineData("random-labels", "ConsistencyModelPipeline · CMStochasticIterativeScheduler · 3 steps (timesteps 30, 10, 0) · batch 3 · classes drawn from the seed · seed 3")]
    public void GenerateGivesDiffusersImages(string run, string header)
    {
        var c = Case(run);
        var args = new List<string> { "generate", "-m", Model, "--seed", c.GetProperty("seed").GetInt64().ToString() };
        var labels = c.GetProperty("class_labels");
        // the labels set the batch (one per image); without labels --batch does
        if (labels.ValueKind == JsonValueKind.Null) args.AddRange(["--batch", c.GetProperty("batch_size").GetInt32().ToString()]);
        var ids = labels.ValueKind switch
        {
            JsonValueKind.Null => [],
            JsonValueKind.Number => [labels.GetInt64()],
            _ => labels.EnumerateArray().Select(l => l.GetInt64()).ToArray(),
        };
        foreach (long id in ids) args.AddRange(["--class-label", id.ToString()]);
        var timesteps = c.GetProperty("timesteps_arg");
        if (timesteps.ValueKind == JsonValueKind.Null) args.AddRange(["--steps", c.GetProperty("num_inference_steps").GetInt32().ToString()]);
        else args.AddRange(["--timesteps", string.Join(",", timesteps.EnumerateArray().Select(t => t.GetInt64()))]);
        using var dir = new TempDir();
        var (code, stdout, stderr) = CliRun.Run([.. args, "-o", dir.File("cm.npy")]);
        Assert.True(code == 0, stderr);
        Assert.Contains(header, stdout);
        using var actual = NpyFile.Read(dir.File("cm.npy"));
        using var expected = Golden.Tensor("consistency-models/consistency-expected.safetensors", run + "/images");
        Tol.Close(actual, expected, 1e-4, run + "/images");
    }

    /// <summary>Without --seed the labels are drawn at random too, and the header says so (not "from the seed").</summary>
    [Fact]
    public void WithoutASeedTheHeaderSaysTheClassesAreDrawnAtRandom()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = CliRun.Run(["generate", "-m", Model, "--batch", "2", "-o", dir.File("random.npy")]);
        Assert.True(code == 0, stderr);
        Assert.Contains("ConsistencyModelPipeline · CMStochasticIterativeScheduler · 1 steps · batch 2 · classes drawn at random · seed random · Float32", stdout);
    }

    /// <summary>One --class-label is used for every image of --batch: the images of the same labels given one per image.</summary>
    [Fact]
    public void OneClassLabelIsUsedForEveryImageOfTheBatch()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = CliRun.Run(["generate", "-m", Model, "--class-label", "4", "--batch", "2", "--seed", "1", "-o", dir.File("one.npy")]);
        Assert.True(code == 0, stderr);
        (code, _, stderr) = CliRun.Run(["generate", "-m", Model, "--class-label", "4", "--class-label", "4", "--seed", "1", "-o", dir.File("two.npy")]);
        Assert.True(code == 0, stderr);
        using var one = NpyFile.Read(dir.File("one.npy"));
        using var two = NpyFile.Read(dir.File("two.npy"));
        Assert.Equal([2L, 8, 8, 3], one.shape);
        Assert.Equal(one.data<float>().ToArray(), two.data<float>().ToArray());
    }

    /// <summary>
    /// A consistency model without <c>num_class_embeds</c> (as openai/diffusers-cd_bedroom256_lpips) runs without labels
    /// and refuses --class-label, which it could not use.
    /// </summary>
    [Fact]
    public void AnUnconditionalConsistencyModelRunsWithoutLabelsAndRefusesClassLabel()
    {
        using var dir = new TempDir();
        string model = Path.Combine(dir.Path, "cm");
        Golden.CopyModel(Path.Combine(model, "unet"), c => c.Replace("\"num_class_embeds\": 10,", ""), "tiny-consistency", "unet");
        Golden.CopyModel(Path.Combine(model, "scheduler"), c => c, "tiny-consistency", "scheduler");
        File.Copy(Golden.Path("tiny-consistency", "model_index.json"), Path.Combine(model, "model_index.json"));
        var (code, _, stderr) = CliRun.Run(["generate", "-m", model, "--class-label", "3", "--seed", "0", "-o", dir.File("refused.npy")]);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains($"--class-label: {model}'s UNet is not class-conditional (its config has no num_class_embeds)", stderr);
        Assert.False(File.Exists(dir.File("refused.npy")));
        (code, var stdout, stderr) = CliRun.Run(["generate", "-m", model, "--batch", "2", "--seed", "0", "-o", dir.File("o.npy")]);
        Assert.True(code == 0, stderr);
        Assert.Contains("ConsistencyModelPipeline · CMStochasticIterativeScheduler · 1 steps · batch 2 · classes none · seed 0", stdout);
        using var images = NpyFile.Read(dir.File("o.npy"));
        Assert.Equal([2L, 8, 8, 3], images.shape);
    }

    [Theory]
    [InlineData("--class-label 1 --class-label 2 --batch 3", "--class-label is given 2 times for --batch 3: give one label (for every image) or one per image")]
    [InlineData("--class-label cat", "--class-label \"cat\" is not a class id: ConsistencyModelPipeline takes class ids (integers from 0), it has no id2label of names")]
    [InlineData("--class-label 10", "ConsistencyModelPipeline: class label 10 is out of range: the UNet has num_class_embeds 10 (labels 0 to 9)")]
    [InlineData("--scheduler euler --timesteps 22,0", "EulerDiscreteScheduler does not accept custom timesteps (diffusers' set_timesteps(timesteps=...)); pass a number of inference steps")]
    [InlineData("--eta 0.5", "ConsistencyModelPipeline takes no --eta: diffusers' ConsistencyModelPipeline passes no eta to the scheduler")]
    [InlineData("--guidance 2", "ConsistencyModelPipeline takes no --guidance: it generates classes (--class-label), not from a prompt or an image")]
    public void OptionsTheConsistencyRouteCannotUseAreRefused(string options, string message)
    {
        using var dir = new TempDir();
        var (code, _, stderr) = CliRun.Run(["generate", "-m", Model, .. options.Split(' '), "--seed", "0", "-o", dir.File("o.npy")]);
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains(message, stderr);
        Assert.DoesNotContain("   at ", stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}
