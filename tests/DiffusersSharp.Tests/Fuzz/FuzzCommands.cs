namespace DiffusersSharp.Tests.Fuzz;

/// <summary>The command lines the fuzz cases run (small and fast: tiny models, one or two steps, .npy output).</summary>
internal static class FuzzCommands
{
    /// <summary><c>generate</c> on a DDPM folder, 2 steps; <paramref name="options"/> add to or replace the defaults.</summary>
    public static string[] Ddpm(FuzzWorkspace w, params (string Option, string Value)[] options) =>
        Build(w, [("--steps", "2"), ("--seed", "0"), ("--output", w.OutputNpy)], options);

    /// <summary><c>generate</c> on a Stable Diffusion folder: 1 step at 16×16 (8×8 latents).</summary>
    public static string[] Sd(FuzzWorkspace w, params (string Option, string Value)[] options) =>
        Build(w, [("--prompt", "a cat"), ("--steps", "1"), ("--seed", "0"), ("--width", "16"), ("--height", "16"), ("--output", w.OutputNpy)], options);

    public static string[] Info(FuzzWorkspace w) => ["info", w.Model];

    /// <summary><c>generate</c> on a DiT folder: class 1, 1 step (guided: a batch of 2 through the transformer).</summary>
    public static string[] DiT(FuzzWorkspace w, params (string Option, string Value)[] options) =>
        Build(w, [("--class-label", "1"), ("--steps", "1"), ("--seed", "0"), ("--output", w.OutputNpy)], options);

    /// <summary><c>generate</c> on an x4 upscaler folder: the golden 16×16 image, 1 step.</summary>
    public static string[] Upscale(FuzzWorkspace w, params (string Option, string Value)[] options) =>
        Build(w, [("--prompt", "a cat"), ("--image", Support.Golden.Path("upscale", "low-res-16x16.png")), ("--steps", "1"), ("--seed", "0"), ("--output", w.OutputNpy)], options);

    /// <summary><c>generate</c> on an InstructPix2Pix folder: the golden 64×64 image, 1 step.</summary>
    public static string[] InstructPix2Pix(FuzzWorkspace w, params (string Option, string Value)[] options) =>
        Build(w, [("--prompt", "make it snowy"), ("--init-image", Support.Golden.Path("img2img-init.png")), ("--steps", "1"), ("--seed", "0"), ("--output", w.OutputNpy)], options);

    /// <summary>
    /// <c>generate --adapter</c> on a Stable Diffusion folder with the adapter of <c>model/adapter</c> (see
    /// <see cref="NewModelCases.WithAdapter"/>) and the golden edge image, 1 step at 32×32.
    /// </summary>
    public static string[] Adapter(FuzzWorkspace w, params (string Option, string Value)[] options) =>
        Build(w, [("--prompt", "a cat"), ("--adapter", w.File("adapter")), ("--adapter-image", Support.Golden.Path("controlnet-edges.png")), ("--steps", "1"),
            ("--seed", "0"), ("--width", "32"), ("--height", "32"), ("--output", w.OutputNpy)], options);

    private static string[] Build(FuzzWorkspace w, (string, string)[] defaults, (string Option, string Value)[] options)
    {
        var list = new List<(string Option, string? Value)>(defaults.Select(d => (d.Item1, (string?)d.Item2)));
        foreach (var (o, v) in options)
        {
            int i = list.FindIndex(x => x.Option == o);
            if (i >= 0) list[i] = (o, v);
            else list.Add((o, v));
        }
        var args = new List<string> { "generate", "--model", w.Model };
        foreach (var (o, v) in list)
        {
            if (v is null) continue;
            args.Add(o);
            args.Add(v);
        }
        return args.ToArray();
    }
}
