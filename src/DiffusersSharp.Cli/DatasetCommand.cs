using System.CommandLine;
using DiffusersSharp.Training;

namespace DiffusersSharp.Cli;

/// <summary><c>diffusers dataset cats --count N --out DIR [--size 32|64] [--seed s]</c>: procedural cartoon cat faces.</summary>
public static class DatasetCommand
{
    /// <summary>Builds the command (options, arguments and handler) around <paramref name="ctx"/>.</summary>
    public static Command Create(CliContext ctx)
    {
        var count = new Option<int>("--count", "-n") { Description = "Number of images", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "Output folder", Required = true };
        var size = new Option<int>("--size") { Description = "Image size: 32 or 64", DefaultValueFactory = _ => 32 };
        var seed = new Option<long>("--seed", "-s") { Description = "Seed (image i of a seed is always the same)", DefaultValueFactory = _ => 0 };
        var cats = new Command("cats", "Draw cartoon cat faces (SkiaSharp) as PNGs") { count, output, size, seed };
        cats.SetAction(pr =>
        {
            int n = pr.GetValue(count), sz = pr.GetValue(size);
            if (sz is not (32 or 64)) throw new UserException($"--size must be 32 or 64, got {sz}");
            if (n <= 0) throw new UserException($"--count must be positive, got {n}");
            string dir = pr.GetValue(output)!;
            CatFaceGenerator.WriteDataset(dir, n, sz, pr.GetValue(seed));
            ctx.Out.WriteLine($"wrote {n} cat faces ({sz}x{sz}) to {dir}");
            return CliApp.Ok;
        });
        return new Command("dataset", "Generate procedural training data sets") { cats };
    }
}
