using System.CommandLine;

namespace DiffusersSharp.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("diffusers: Hugging Face diffusers pipelines in .NET");
        return root.Parse(args).Invoke();
    }
}
