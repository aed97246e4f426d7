namespace DiffusersSharp.Cli;

public static class Program
{
    public static int Main(string[] args) => CliApp.Run(args, Console.Out, Console.Error, Console.IsOutputRedirected);
}
