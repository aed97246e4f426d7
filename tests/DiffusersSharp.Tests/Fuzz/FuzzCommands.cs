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
