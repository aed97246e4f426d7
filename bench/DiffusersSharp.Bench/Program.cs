namespace DiffusersSharp.Bench;

public static class Program
{
    public static int Main(string[] args)
    {
        Console.WriteLine("usage: dotnet run -c Release --project bench/DiffusersSharp.Bench -- <benchmark>");
        return 0;
    }
}
